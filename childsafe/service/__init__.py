"""The HTTP service (FastAPI): routes per area, API keys and roles.

Import the app from ``childsafe.service.app``: this package's own import is
kept light, because ``childsafe apikey`` needs only ``keys``."""
