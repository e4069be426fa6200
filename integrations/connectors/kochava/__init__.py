"""Kochava, all of it: the connector (segment sync as IdentityLinks), the event stream and Send Users,
their models, worker tasks, console section, management API, admin and templates. A Django app
(label "kochava"); the registry wires it in.
"""
