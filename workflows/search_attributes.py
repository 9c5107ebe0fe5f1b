"""Typed search attributes, so operators can filter workflows in the Temporal Web UI.

They must be registered on the namespace before use: the embedded dev server registers them at
start (``stack.temporal``), docker-compose's admin-tools step does it for the cluster.
"""

from temporalio.common import SearchAttributeKey

CLIENT_ID = SearchAttributeKey.for_keyword("WavelaunchClientId")
DOCUMENT_KIND = SearchAttributeKey.for_keyword("WavelaunchDocumentKind")
LEVEL = SearchAttributeKey.for_keyword("WavelaunchLevel")
STATUS = SearchAttributeKey.for_keyword("WavelaunchStatus")

ALL = (CLIENT_ID, DOCUMENT_KIND, LEVEL, STATUS)

# name -> the type name `temporal server start-dev --search-attribute` and
# `temporal operator search-attribute create` accept.
REGISTRATION = {key.name: "Keyword" for key in ALL}
