"""audiences.events: set-wise event loading (the Export import and /v1 track calls share it)."""

from audiences.events import store_event_lines, store_events
from audiences.models import Event, Identity, Profile


def test_store_events_dedupes_links_and_counts(acme):
    rows = [
        {
            "event_type": "Purchase",
            "user_id": "alice",
            "uuid": "u1",
            "$insert_id": "i1",
            "event_time": "2024-05-01 10:00:00.123000",
            "event_properties": {"revenue": 3},
        },
        {"event_type": "Purchase", "user_id": "alice", "uuid": "u2", "event_time": "2024-05-01T11:00:00Z"},
        {"event_type": "Song Played", "device_id": "dev-9", "amplitude_id": 42, "uuid": "u3"},
        {"event_type": "Song Played", "user_id": "alice", "uuid": "u4", "$insert_id": "i1"},  # same insert_id
    ]
    counts = store_events(acme.pk, rows)
    assert counts.loaded == 3 and counts.duplicates == 1 and counts.profiles_created == 2
    alice = Profile.objects.get(identities__kind="user_id", identities__value="alice")
    assert alice.event_counts == {"Purchase": 2}
    assert (
        Identity.objects.get(kind="device_id", value="dev-9").profile_id
        == Identity.objects.get(kind="amplitude_id", value="42").profile_id
    )
    assert Event.objects.get(uuid="u1").event_properties == {"revenue": 3}
    again = store_events(acme.pk, rows[:2])  # a replay loads nothing and counts nothing
    assert again.loaded == 0 and Profile.objects.get(pk=alice.pk).event_counts == {"Purchase": 2}


def test_malformed_lines_are_reported_and_the_rest_loaded(acme):
    lines = [
        ("f:1", '{"event_type":"A","user_id":"bob","uuid":"x1"}'),
        ("f:2", "not json"),
        ("f:3", "[1,2]"),
        ("f:4", '{"user_id":"bob"}'),
        ("f:5", ('{"event_type":"A","user_id":"bob","uuid":"x2","event_time":"garbage"}')),
    ]
    counts = store_event_lines(acme.pk, lines)
    assert counts.loaded == 2 and counts.skipped == 3
    assert counts.skipped_samples == [
        ["f:2", "malformed JSON"],
        ["f:3", "not a JSON object"],
        ["f:4", "missing event_type"],
    ] or counts.skipped_samples == [
        ("f:2", "malformed JSON"),
        ("f:3", "not a JSON object"),
        ("f:4", "missing event_type"),
    ]
    # An unreadable time (and no upload time) becomes the arrival: event_time is the partition key.
    x2 = Event.objects.get(uuid="x2")
    assert x2.event_time == x2.loaded_at


def test_event_files_skip_blank_lines_number_lines_per_file_and_keep_the_first_duplicate(acme):
    import io

    from audiences.events import store_event_files

    first = (
        b'{"event_type":"A","user_id":"carol","uuid":"f1","event_time":"2024-05-01 10:00:00.000000"}\r\n'
        b"\n   \n"
        b'{"event_type":"B","user_id":"carol","uuid":"f1"}\n'  # same uuid: the first line wins
        b"{oops\n"
    )
    second = b'{"event_type":"A","device_id":"dev-1","uuid":"f2","event_time":"2024-05-01T10:00:00+02:00"}'
    counts = store_event_files(acme.pk, [("a.json", io.BytesIO(first)), ("b.json", io.BytesIO(second))])
    assert (counts.read, counts.loaded, counts.duplicates, counts.skipped) == (4, 2, 1, 1)
    assert counts.skipped_samples == [("a.json:5", "malformed JSON")]
    assert Event.objects.get(uuid="f1").event_type == "A"
    assert Event.objects.get(uuid="f2").event_time.isoformat() == "2024-05-01T08:00:00+00:00"
    carol = Profile.objects.get(identities__kind="user_id", identities__value="carol")
    assert carol.event_counts == {"A": 1}
