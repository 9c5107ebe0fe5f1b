"""Pure data: the client record, the section catalogue, output schemas and rendering."""
