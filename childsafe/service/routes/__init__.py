"""HTTP routes, one module an area: health, matching, banks, deter, dashboard, referrals. Each imports
``childsafe.service.dependencies``, never ``childsafe.service.app`` or another route module."""
