"""Campaigns: what is sent to people through a partner's campaigns (issue 18 builds them here).

Its first models were partner flows and now live with their partner, in the partner's package under
integrations/connectors/; this app's migrations 0001-0002 created their tables, which keep their
campaigns_* names, and 0003 hands the models over without touching the tables.
"""
