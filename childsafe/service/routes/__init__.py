"""HTTP routes, one module an area: health, matching, banks, deter. Each imports
``childsafe.service.dependencies``, never ``childsafe.service.app`` or another route module."""
