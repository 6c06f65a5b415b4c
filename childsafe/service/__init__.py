"""The HTTP service (FastAPI): routes per area, API keys and roles."""

from childsafe.service.app import create_app
from childsafe.service.keys import ROLES, create_api_key, list_api_keys, revoke_api_key

__all__ = ["ROLES", "create_api_key", "create_app", "list_api_keys", "revoke_api_key"]
