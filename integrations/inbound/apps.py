from django.apps import AppConfig


class InboundConfig(AppConfig):
    name = "integrations.inbound"
    label = "inbound"
    verbose_name = "Inbound pushes (Amplitude cohort sync, Segment/RudderStack)"
