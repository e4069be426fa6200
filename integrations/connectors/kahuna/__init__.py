"""Kahuna, all of it: the connector (segment sync as user attributes), Export to Kahuna (the campaign
list and the exports to Adaptive campaigns), their models, worker tasks, console pages, management
API, admin and templates. A Django app (label "kahuna"); the registry wires it in.
"""
