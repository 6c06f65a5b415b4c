"""What childsafe does on behalf of a caller, shared by the command line and
the HTTP service: API keys and roles (``keys``), what a match does per bank
(``on_match``), webhook delivery (``webhooks``) and the evidence store of
preserved uploads (``preservation``).

Import the modules themselves: this package's own import is kept light,
because ``childsafe apikey`` needs only ``keys``."""
