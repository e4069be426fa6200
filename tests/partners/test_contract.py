"""CleverTap, Kahuna and Kochava against their sandbox partners: the shared connector contract."""

from integrations.connectors.base import Batch, ConnectorError, OutRow, Policy
from integrations.delivery.planning import build_connector
from tests.connectors.contract import MEMBERS, ConnectorContract
from tests.delivery.helpers import sync

DEVICES = [f"d{i}" for i in range(MEMBERS)]


class TestCleverTap(ConnectorContract):
    kind = partner_kind = "clevertap"
    secrets = {"passcode": "ct-passcode-123"}
    wrong_secrets = {"passcode": "not-the-passcode"}
    auth_fields = {"account_id": "ACC-1", "region": "in1"}
    partner_options = {"account_id": "ACC-1", "passcode": "ct-passcode-123"}

    def destination_config(self, base_url):
        return {"base_url": base_url, "batch_size": 8}  # 4 members (profile + event each) per call

    def delivered_ids(self, fake, job):
        key = f"[Amplitude] {job.segment.name}: {job.segment.external_id}"
        return {who for who, data in fake.profiles.items() if data.get(key) is True}

    def reject_options(self, user_id):
        return {"reject_ids": [user_id]}


class TestKahuna(ConnectorContract):
    kind = partner_kind = "kahuna"
    secrets = {"secret_key": "kh-secret-123", "api_key": "kh-api-456"}
    wrong_secrets = {"secret_key": "kh-secret-123", "api_key": "wrong-api-key"}
    partner_options = {"secret_key": "kh-secret-123", "api_key": "kh-api-456"}

    def destination_config(self, base_url):
        return {"base_url": base_url, "environment": "s", "batch_size": 100}

    def delivered_ids(self, fake, job):
        attribute = f"amplitude_cohort_{job.segment.external_id}"
        # The fake keys a user by its first credential (user_id before install_token).
        return {
            who.split(":", 1)[1] for who, attrs in fake.user_attributes["s"].items() if attrs.get(attribute) == "true"
        }

    def reject_options(self, user_id):
        return {"reject_ids": [user_id]}  # Kahuna refuses the whole call: the engine bisects to the row


class TestKochava(ConnectorContract):
    kind = partner_kind = "kochava"
    secrets = {"api_key": "ko-api-key-123"}
    wrong_secrets = {"api_key": "ko-api-key-123"}
    auth_fields = {"app_guid": "koapp-test"}
    partner_options = {"installed": DEVICES}
    mapping = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}

    def destination_config(self, base_url):
        return {"base_url": base_url, "mapping": self.mapping, "event_types": ["Purchase"]}

    def delivered_ids(self, fake, job):
        return {
            links.get("User ID")
            for links in fake.identities.values()
            if links.get(f"Amplitude cohort {job.segment.name} ({job.segment.external_id})") == "true"
        }

    def reject_options(self, user_id):
        return {"reject_ids": ["d" + user_id[1:]]}

    def test_401_disables_the_destination_with_the_partners_message(self, world):
        # Kochava's post-install endpoint takes no credentials; a 401 can only come from a proxy or
        # the optional authentication, so it is injected.
        partner, job = world()
        partner.fake.set_faults(script=[{"status": 401, "message": "Authentication failed"}] * 10)
        run = sync(job)
        assert run.status == "failed"
        job.destination.refresh_from_db()
        assert job.destination.health == "disabled" and "401" in job.destination.last_error
        assert self.delivered_ids(partner.fake, job) == set()

    def test_oversize_batch_is_split(self, world):
        # One record per request: there is no batch to split. What the cap means here is that a
        # record over 2 MB is never sent; it is refused before the partner sees it.
        partner, job = world()
        connector = build_connector(job)
        huge = OutRow(1, 1, "add", "u0", "d0", properties={"blob": "x" * (2 * 1024 * 1024)})
        connector.config["user_properties"] = ["blob"]
        try:
            connector.send(Batch("add", [huge]))
        except ConnectorError as error:
            assert error.policy == Policy.TOO_LARGE
        else:
            raise AssertionError("a 2 MB record was sent")
        assert partner.fake.stats()["total"] == 0
