"""HTTP routes, one module an area: health, matching, banks."""
