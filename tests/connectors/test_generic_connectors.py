"""The list, traits and webhook connectors against their sandbox partners: the shared contract."""

from tests.connectors.contract import ConnectorContract

API_KEY = "test-api-key"


class TestListApi(ConnectorContract):
    kind = partner_kind = "list_api"
    secrets = {"api_key": API_KEY}
    wrong_secrets = {"api_key": "not-the-key"}

    def destination_config(self, base_url):
        return {"base_url": base_url, "batch_size": 100}

    def delivered_ids(self, fake, job):
        list_id = job.partner_state.get("list_id")
        return fake.members(list_id) if list_id else set()

    def reject_options(self, user_id):
        return {"reject_ids": [user_id], "reject_mode": "row"}


class TestListApiWholeBatchRejection(TestListApi):
    """The same contract when the partner refuses the whole call (the engine must bisect)."""

    def reject_options(self, user_id):
        return {"reject_ids": [user_id], "reject_mode": "request"}


class TestTraitsApi(ConnectorContract):
    kind = partner_kind = "traits_api"
    secrets = {"api_key": API_KEY}
    wrong_secrets = {"api_key": "not-the-key"}

    def destination_config(self, base_url):
        return {"url": f"{base_url}/v1/identify", "batch_size": 100}

    def delivered_ids(self, fake, job):
        return fake.members(f"[Amplitude] {job.segment.name}: {job.segment.external_id}")

    def reject_options(self, user_id):
        return {"reject_ids": [user_id], "reject_mode": "row"}

    def oversize_cap(self):
        return 900


class TestCohortWebhook(ConnectorContract):
    kind = partner_kind = "cohort_webhook"
    secrets = {"header_value": "hook-s3cret"}
    wrong_secrets = {"header_value": "wrong"}
    auth_fields = {"header_name": "X-Hook-Token"}
    partner_options = {"required_headers": {"X-Hook-Token": "hook-s3cret"}}

    def destination_config(self, base_url):
        return {"url": f"{base_url}/hooks/cohorts", "headers": {"X-Source": "cohort-console"}, "batch_size": 100}

    def delivered_ids(self, fake, job):
        return fake.members(job.segment.external_id)

    def reject_options(self, user_id):
        return {"reject_ids": [user_id]}
