"""Output schemas: what each section must return, as strict JSON.

Sections are generated as JSON and rendered to Markdown only for display, so the model never
spends tokens on formatting and every answer can be validated. One module of models per
document kind (plan, deliverables, summaries); ``schemas`` turns a section's model into what
is sent (strict schema, schema name, batch and patch schemas).
"""
