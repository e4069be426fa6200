"""gunicorn's production configuration (docs/operations.md). gunicorn reads ./gunicorn.conf.py from
the directory it starts in; `gunicorn -c gunicorn.conf.py config.wsgi:application` says so explicitly.

Amplitude's cohort sync documents its key as an `api_key` header. gunicorn drops every header whose
name holds an underscore, because `X_Forwarded_For` and `X-Forwarded-For` would land in the same
WSGI variable and a client could slip one past a proxy that only rewrites the other. Rather than
map every such header (header_map = "dangerous"), exactly this one name is let through, from the
peers gunicorn trusts as forwarders: `forwarded_allow_ips` (environment FORWARDED_ALLOW_IPS, default
127.0.0.1,::1 — a reverse proxy on the same host; a unix-socket peer is always trusted). A proxy on
another host needs its address there, and nginx needs `underscores_in_headers on;` to pass the
header at all (docs/operations.md). A client's own `api_key` can only ever name its own key.
"""

forwarder_headers = "SCRIPT_NAME,PATH_INFO,API_KEY"  # gunicorn's two defaults, and Amplitude's api_key
