"""The HTTP service (FastAPI): routes per area over ``dependencies``.

Import the app from ``childsafe.service.app``: this package's own import is
kept light. API keys, webhooks and preservation, which the command line uses
too, are in ``childsafe.actions``."""
