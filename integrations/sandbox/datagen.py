"""Deterministic, fast fake data for the Amplitude sandbox.

Everything is derived from integers through a cheap 64-bit mixer, so a 2,000,000-member
cohort or a multi-million-event export needs no stored lists: user ``n`` is always
``amplitude_id = 10_000_000 + n`` and ``user_id = "user-<n>"`` (or anonymous), in every
cohort and in every event, for a given population seed.

Speed tricks (why the code looks the way it does):
- user properties come from a table of 4096 pre-built "profiles" (pre-quoted for CSV,
  pre-serialised for JSON) picked by hash bits, instead of per-row random choices;
- CSV rows and event lines are built with f-strings and joined in batches.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_M64 = (1 << 64) - 1
AMPLITUDE_ID_BASE = 10_000_000
PROFILE_COUNT = 4096  # must be a power of two: indexed with ``h & (PROFILE_COUNT - 1)``

# User-property columns of the cohort CSV (props=1), in file order.
PROPERTY_COLUMNS = (
    "city",
    "country",
    "region",
    "language",
    "platform",
    "os",
    "device",
    "device_type",
    "carrier",
    "library",
    "version",
    "start_version",
    "dma",
)
DEFAULT_USER_PROPERTIES: Mapping[str, Sequence[str]] = {
    "plan": ("free", "free", "premium", "family", "student"),
    "signup_source": ("organic", "google_ads", "facebook", "referral", "tiktok"),
}

# (city, country, region, dma, language, lat, lng). Commas and non-ASCII on purpose: they
# exercise CSV quoting and UTF-8 handling in clients.
_GEO = (
    (
        "San Francisco",
        "United States",
        "California",
        "San Francisco-Oakland-San Jose, CA",
        "English",
        37.7749,
        -122.4194,
    ),
    ("New York", "United States", "New York", "New York, NY", "English", 40.7128, -74.006),
    ("Austin", "United States", "Texas", "Austin, TX", "English", 30.2672, -97.7431),
    (
        "Washington",
        "United States",
        "District of Columbia",
        "Washington, DC (Hagerstown, MD)",
        "English",
        38.9072,
        -77.0369,
    ),
    ("Chicago", "United States", "Illinois", "Chicago, IL", "Spanish", 41.8781, -87.6298),
    ("London", "United Kingdom", "England", "", "English", 51.5072, -0.1276),
    ("Berlin", "Germany", "Land Berlin", "", "German", 52.52, 13.405),
    ("Paris", "France", "Île-de-France", "", "French", 48.8566, 2.3522),
    ("São Paulo", "Brazil", "São Paulo", "", "Portuguese", -23.5505, -46.6333),
    ("Mexico City", "Mexico", "Mexico City", "", "Spanish", 19.4326, -99.1332),
    ("Tokyo", "Japan", "Tokyo", "", "Japanese", 35.6762, 139.6503),
    ("Bengaluru", "India", "Karnataka", "", "English", 12.9716, 77.5946),
    ("Toronto", "Canada", "Ontario", "", "English", 43.6532, -79.3832),
    ("Sydney", "Australia", "New South Wales", "", "English", -33.8688, 151.2093),
)
# (platform, os_name, os_version, device_family, device_type, manufacturer, brand, model, library)
_DEVICES = (
    ("iOS", "ios", "17.2", "Apple iPhone", "Apple iPhone 15", "Apple", "Apple", "iPhone15,4", "amplitude-swift/1.4.0"),
    ("iOS", "ios", "16.6", "Apple iPhone", "Apple iPhone 13", "Apple", "Apple", "iPhone14,5", "amplitude-swift/1.3.2"),
    (
        "Android",
        "android",
        "14",
        "Samsung Galaxy S23",
        "Samsung Galaxy S23",
        "samsung",
        "samsung",
        "SM-S911B",
        "amplitude-android/1.12.0",
    ),
    (
        "Android",
        "android",
        "13",
        "Google Pixel 7",
        "Google Pixel 7",
        "Google",
        "google",
        "Pixel 7",
        "amplitude-android/1.11.1",
    ),
    ("Web", "Chrome", "120", "Mac", "Mac", None, None, None, "amplitude-ts/2.4.0"),
    ("Web", "Firefox", "121", "Windows", "Windows", None, None, None, "amplitude-ts/2.4.0"),
)
_CARRIERS = ("Verizon", "T-Mobile", "AT&T", "Vodafone", "Orange", "Telefónica", "Jio", "NTT DOCOMO", "")
_VERSIONS = ("3.12.0", "3.11.2", "3.10.0", "2.9.1")  # newest first

# event_type -> (weight, builder: 64-bit hash -> event_properties as JSON text). Builders
# emit JSON directly (all values are JSON-safe) because json.dumps per event is too slow.
_GENRES = ("pop", "rock", "hip-hop", "jazz", "classical", "electronic")
_CATEGORIES = ("music", "merch", "tickets", "gift-cards")
_EVENT_TYPES: tuple[tuple[str, int, Callable[[int], str]], ...] = (
    (
        "Song Played",
        50,
        lambda h: f'{{"song_id":"song-{h % 50_000}","genre":"{_GENRES[h % 6]}","duration_ms":{90_000 + h % 240_000}}}',
    ),
    ("View Product", 20, lambda h: f'{{"product_id":"sku-{h % 5_000}","category":"{_CATEGORIES[h % 4]}"}}'),
    (
        "Add To Cart",
        12,
        lambda h: (
            f'{{"product_id":"sku-{h % 5_000}","price":{h % 9_000 / 100 + 0.99:.2f},'
            f'"quantity":{1 + h % 3},"category":"{_CATEGORIES[h % 4]}"}}'
        ),
    ),
    (
        "Purchase",
        5,
        lambda h: (
            f'{{"product_id":"sku-{h % 5_000}","revenue":{h % 20_000 / 100 + 0.99:.2f},'
            f'"currency":"USD","quantity":{1 + h % 3}}}'
        ),
    ),
    (
        "Sign Up",
        3,
        lambda h: (
            f'{{"method":"{("email", "google", "apple", "facebook")[h % 4]}",'
            f'"referral":{"true" if h & 1 else "false"}}}'
        ),
    ),
    ("Session Start", 10, lambda h: "{}"),
)
_DAYS_2023 = tuple(time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + d * 86_400)) for d in range(365))
_EVENT_PICK: tuple[int, ...] = tuple(i for i, (_, w, _b) in enumerate(_EVENT_TYPES) for _ in range(w))
EVENT_TYPES: tuple[str, ...] = tuple(t[0] for t in _EVENT_TYPES)


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a cheap, well-distributed integer hash."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
    return x ^ (x >> 31)


def _q(value: object) -> str:
    """Quote one CSV value the way Amplitude does: always, doubling inner quotes."""
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"'


def _uuid(a: int, b: int) -> str:
    """UUID-v4-looking text from two hashes (variant bits not exact; nobody checks)."""
    x = f"{a:016x}{b:016x}"
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{x[16:20]}-{x[20:]}"


class Population:
    """The universe of fake users shared by cohorts and events (same seed -> same people)."""

    def __init__(
        self,
        seed: int = 0,
        anonymous_fraction: float = 0.02,
        user_properties: Mapping[str, Sequence[str]] = DEFAULT_USER_PROPERTIES,
    ) -> None:
        self.seed = seed
        self.salt = mix64(seed + 0x5EED)
        self.anon_cut = int(anonymous_fraction * 65536)  # compared with the top 16 hash bits
        self.user_properties = {k: tuple(v) for k, v in user_properties.items()}
        rng = random.Random(seed)
        self.profiles: list[dict[str, object]] = []
        for _ in range(PROFILE_COUNT):
            city, country, region, dma, lang, lat, lng = rng.choice(_GEO)
            plat, os_name, os_ver, family, dtype, manu, brand, model, lib = rng.choice(_DEVICES)
            v = rng.randrange(len(_VERSIONS))
            self.profiles.append(
                {
                    "city": city,
                    "country": country,
                    "region": region,
                    "language": lang,
                    "platform": plat,
                    "os": f"{os_name} {os_ver}",
                    "device": family,
                    "device_type": dtype,
                    "carrier": "" if plat == "Web" else rng.choice(_CARRIERS),
                    "library": lib,
                    "version": _VERSIONS[v],
                    "start_version": _VERSIONS[rng.randrange(v, len(_VERSIONS))],
                    "dma": dma,
                    "os_name": os_name,
                    "os_version": os_ver,
                    "device_manufacturer": manu,
                    "device_brand": brand,
                    "device_model": model,
                    "location_lat": lat,
                    "location_lng": lng,
                }
            )
        self._csv_tables: dict[tuple[str, ...], list[str]] = {}
        self._user_fragments: dict[int, tuple[str, int]] = {}
        # '"key":"value"' JSON text of every custom property value, per key in key order.
        self._prop_json = [
            [json.dumps({k: v}, separators=(",", ":"), ensure_ascii=False)[1:-1] for v in values]
            for k, values in self.user_properties.items()
        ]
        self._event_static_json = [
            json.dumps(self._event_static_fields(p), separators=(",", ":"), ensure_ascii=False)[1:-1]
            for p in self.profiles
        ]

    # --- one user ---------------------------------------------------------------------
    def user_hash(self, n: int) -> int:
        return mix64((n + self.salt) & _M64)

    def user_id(self, n: int, h: int | None = None) -> str:
        """``"user-<n>"``, or ``""`` for anonymous users (a stable ~anonymous_fraction)."""
        h = self.user_hash(n) if h is None else h
        return "" if (h >> 48) < self.anon_cut else f"user-{n}"

    def device_id(self, n: int, h: int | None = None) -> str:
        h = self.user_hash(n) if h is None else h
        return _uuid(mix64(h ^ 0xD1CE), mix64(h ^ 0xD1CF)).upper()

    def custom_value(self, key_index: int, values: Sequence[str], h: int) -> str:
        # Low 12 bits pick the profile; later keys use further hash bits (no extra hashing).
        bits = (h >> (12 + 8 * key_index)) & 0xFF if key_index < 4 else mix64(h + key_index)
        return values[bits % len(values)]

    def member(self, n: int) -> dict[str, object]:
        """All cohort-member fields of user ``n`` (handy for tests and explicit cohorts)."""
        h = self.user_hash(n)
        row: dict[str, object] = {
            "amplitude_id": AMPLITUDE_ID_BASE + n,
            "user_id": self.user_id(n, h),
            "device_id": self.device_id(n, h),
        }
        prof = self.profiles[h & (PROFILE_COUNT - 1)]
        row.update({c: prof[c] for c in PROPERTY_COLUMNS})
        for i, (key, values) in enumerate(self.user_properties.items()):
            row[key] = self.custom_value(i, values, h)
        return row

    def event_user_fragment(self, n: int) -> tuple[str, int]:
        """Cached JSON fragment of user ``n``'s per-user event fields, and its profile index.

        Built from pre-serialised pieces: with huge user pools almost every event is a cache
        miss, so this must stay cheap too.
        """
        hit = self._user_fragments.get(n)
        if hit is None:
            h = self.user_hash(n)
            uid = "null" if (h >> 48) < self.anon_cut else f'"user-{n}"'
            props = ",".join(self.custom_value(j, values, h) for j, values in enumerate(self._prop_json))
            c = mix64(h ^ 0xC7EA7E)  # account creation: some second of 2023
            sec = c % 86_400
            created = f"{_DAYS_2023[(c >> 20) % 365]} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.000000"
            frag = (
                f'"user_id":{uid},"amplitude_id":{AMPLITUDE_ID_BASE + n},"device_id":"{self.device_id(n, h)}",'
                f'"user_properties":{{{props}}},"user_creation_time":"{created}"'
            )
            if len(self._user_fragments) >= 200_000:  # bound memory for huge user pools
                self._user_fragments.clear()
            hit = self._user_fragments[n] = (frag, h & (PROFILE_COUNT - 1))
        return hit

    # --- cohort CSV ---------------------------------------------------------------------
    def _csv_table(self, columns: tuple[str, ...]) -> list[str]:
        """Per-profile pre-quoted ``,"v1","v2"...`` suffix for the given property columns."""
        table = self._csv_tables.get(columns)
        if table is None:
            table = ["".join("," + _q(p[c]) for c in columns) for p in self.profiles]
            self._csv_tables[columns] = table
        return table

    @staticmethod
    def _event_static_fields(p: Mapping[str, object]) -> dict[str, object]:
        return {
            "device_carrier": p["carrier"] or None,
            "city": p["city"],
            "platform": p["platform"],
            "os_version": p["os_version"],
            "version_name": p["version"],
            "paying": None,
            "dma": p["dma"] or None,
            "group_properties": {},
            "library": p["library"],
            "amplitude_attribution_ids": None,
            "device_type": p["device_type"],
            "start_version": p["start_version"],
            "location_lng": p["location_lng"],
            "location_lat": p["location_lat"],
            "os_name": p["os_name"],
            "groups": {},
            "data": {},
            "language": p["language"],
            "country": p["country"],
            "region": p["region"],
            "device_family": p["device"],
            "sample_rate": None,
            "device_manufacturer": p["device_manufacturer"],
            "device_brand": p["device_brand"],
            "device_model": p["device_model"],
            "amplitude_event_type": None,
            "is_attribution_event": False,
            "adid": None,
            "idfa": None,
            "$schema": None,
        }


# --- cohorts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortSpec:
    """A generated cohort: users ``start .. start+size-1`` at version 0, drifting afterwards.

    Each version removes ~``churn`` of the members (every member independently, via a
    geometric "leaves at version r" drawn from its hash) and adds ``round(size*churn)`` new
    users, so size stays roughly constant and re-imports see entered *and* exited users.
    """

    size: int
    start: int = 0
    seed: int = 0
    churn: float = 0.05
    version: int = 0
    user_properties: Mapping[str, Sequence[str]] | None = None  # None -> population's
    repeat_every: int = 0  # every n-th member's row is written twice in a row (0 = none): a file naming a key twice

    def member_numbers(self) -> Iterator[int]:
        if self.version == 0 or self.churn <= 0:
            return iter(range(self.start, self.start + self.size))
        return self._drifted()

    def _drifted(self) -> Iterator[int]:
        # Member idx (born at version b) leaves at a geometric version; it is still in at
        # version v iff its uniform draw x <= (1-churn)^(v-b): compare 53-bit integers.
        added = max(1, round(self.size * self.churn))
        keep = 1.0 - min(self.churn, 0.999999)
        cut = [int(keep ** (self.version - b) * 2**53) for b in range(self.version + 1)]
        salt = mix64(self.seed ^ 0xC0407)
        size, start = self.size, self.start
        for idx in range(size + self.version * added):
            x = (idx + salt) & _M64  # inlined mix64
            x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
            x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
            if ((x ^ (x >> 31)) >> 11) < cut[0 if idx < size else 1 + (idx - size) // added]:
                yield start + idx

    def count(self, limit: int = 300_000) -> int:
        """Exact member count when cheap, else the nominal size (like Amplitude's estimate)."""
        if self.version == 0 or self.size > limit:
            return self.size
        return sum(1 for _ in self.member_numbers())


def csv_columns(props: bool, prop_keys: Sequence[str] = (), custom_keys: Sequence[str] = ()) -> list[str]:
    """Header of a cohort file. With props the ``amplitude_id`` column repeats (real quirk)."""
    if not props:
        return ["amplitude_id", "user_id"]
    if prop_keys:
        std = [c for c in PROPERTY_COLUMNS if c in prop_keys]
        rest = [k for k in custom_keys if k in prop_keys]
        rest += [k for k in prop_keys if k not in std and k not in rest]
    else:
        std, rest = list(PROPERTY_COLUMNS), list(custom_keys)
    return ["amplitude_id", "user_id", "amplitude_id", *std, *rest]


def generated_csv(pop: Population, spec: CohortSpec, columns: Sequence[str], batch: int = 1024) -> Iterator[str]:
    """Stream a generated cohort as CSV text chunks (header first), ``batch`` rows per chunk."""
    yield ",".join(_q(c) for c in columns) + "\r\n"
    props = len(columns) > 2
    custom = dict(pop.user_properties if spec.user_properties is None else spec.user_properties)
    std = tuple(c for c in columns[3:] if c in PROPERTY_COLUMNS)
    table = pop._csv_table(std) if props else [""] * PROFILE_COUNT
    # Per custom column: (key index for hash bits, pre-quoted values) or None if unknown key.
    extra = (
        [(list(custom).index(c), [_q(v) for v in custom[c]]) if c in custom else None for c in columns[3 + len(std) :]]
        if props
        else []
    )
    salt, anon_cut, mask, base = pop.salt, pop.anon_cut, PROFILE_COUNT - 1, AMPLITUDE_ID_BASE
    repeat = spec.repeat_every
    rows: list[str] = []
    for n in spec.member_numbers():
        x = (n + salt) & _M64  # inlined mix64: this loop is the hot path
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
        h = x ^ (x >> 31)
        amp = base + n
        uid = "" if (h >> 48) < anon_cut else f"user-{n}"
        if not props:
            rows.append(f'"{amp}","{uid}"\r\n')
        else:
            tail = (
                "".join(
                    ","
                    + (
                        e[1][((h >> (12 + 8 * e[0])) & 0xFF if e[0] < 4 else mix64(h + e[0])) % len(e[1])]
                        if e
                        else '""'
                    )
                    for e in extra
                )
                if extra
                else ""
            )
            rows.append(f'"{amp}","{uid}","{amp}"{table[h & mask]}{tail}\r\n')
        if repeat and n % repeat == 0:
            rows.append(rows[-1])
        if len(rows) >= batch:
            yield "".join(rows)
            rows.clear()
    if rows:
        yield "".join(rows)


def members_csv(members: Iterable[Mapping[str, object]], columns: Sequence[str], batch: int = 1024) -> Iterator[str]:
    """Stream explicit member rows (dicts) as CSV; missing values become ``""``."""
    yield ",".join(_q(c) for c in columns) + "\r\n"
    rows: list[str] = []
    for m in members:
        rows.append(",".join(_q(m.get(c)) for c in columns) + "\r\n")
        if len(rows) >= batch:
            yield "".join(rows)
            rows.clear()
    if rows:
        yield "".join(rows)


# --- events -------------------------------------------------------------------------------
def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass
class EventSource:
    """Hourly synthetic events for one project, from ``start`` for ``hours`` hours.

    ``hours=None`` means "up to now minus ``lag_hours``" (Amplitude exports data ~2 h after
    receipt). Each hour holds ``events_per_hour`` events split into files of
    ``events_per_file`` (the ``#n`` part index of the export entry names).
    """

    start: datetime
    hours: int | None = None
    events_per_hour: int = 500
    events_per_file: int = 10_000
    users: int = 10_000
    user_start: int = 0
    seed: int = 0
    lag_hours: int = 2
    _start: datetime = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._start = _utc(self.start).replace(minute=0, second=0, microsecond=0)

    def last_hour(self, now: float | None = None) -> datetime:
        now_dt = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        cap = now_dt.replace(minute=0, second=0, microsecond=0) - timedelta(hours=self.lag_hours)
        if self.hours is None:
            return cap
        return min(cap, self._start + timedelta(hours=self.hours - 1))

    def hours_between(self, first: datetime, last: datetime, now: float | None = None) -> list[datetime]:
        """Hours (inclusive) of the window that hold data."""
        lo, hi = max(_utc(first), self._start), min(_utc(last), self.last_hour(now))
        out = []
        while lo <= hi:
            out.append(lo)
            lo += timedelta(hours=1)
        return out

    def parts(self, hour: datetime) -> int:
        return max(1, -(-self.events_per_hour // self.events_per_file))

    def lines(self, pop: Population, project_id: int, hour: datetime, part: int = 0) -> Iterator[str]:
        """NDJSON lines (no newline) of one hour part: the hot path of the export endpoint.

        Lines are assembled from text fragments: per-hour timestamp prefixes, a cached
        per-user fragment and a pre-serialised per-profile fragment.
        """
        hour = _utc(hour)
        per_file = self.events_per_file
        first = part * per_file
        count = max(0, min(per_file, self.events_per_hour - first))
        step = 3_600_000_000 // max(self.events_per_hour, 1)
        hour_ms = int(hour.timestamp()) * 1000
        day = hour.strftime("%Y-%m-%d %H:")
        secs = [f"{day}{s // 60:02d}:{s % 60:02d}." for s in range(3600)]  # "...HH:MM:SS."
        salt = mix64(self.seed * 1_000_003 + hour_ms)
        users, ustart, static = max(self.users, 1), self.user_start, pop._event_static_json
        picks, npick = _EVENT_PICK, len(_EVENT_PICK)
        for i in range(first, first + count):
            e = (i + salt) & _M64  # inlined mix64 (twice): this loop is the export hot path
            e = (e ^ (e >> 30)) * 0xBF58476D1CE4E5B9 & _M64
            e = (e ^ (e >> 27)) * 0x94D049BB133111EB & _M64
            e ^= e >> 31
            e2 = (e ^ (e >> 29)) * 0xBF58476D1CE4E5B9 & _M64
            e2 ^= e2 >> 32
            ufrag, prof = pop.event_user_fragment(ustart + e % users)
            up = i * step + (e >> 40) % step  # server_upload_time offset (us) inside the hour
            et = max(0, up - ((e >> 20) & 0xFFFFF))  # client event up to ~1 s before upload
            pt = min(up + 250_000, 3_599_999_999)
            t_up = f"{secs[up // 1_000_000]}{up % 1_000_000:06d}"
            t_et = f"{secs[et // 1_000_000]}{et % 1_000_000:06d}"
            x = f"{e:016x}{e2:016x}"  # hex for uuid and $insert_id
            name, _w, build = _EVENT_TYPES[picks[(e >> 8) % npick]]
            yield (
                f'{{"server_received_time":"{t_up}","app":{project_id},{ufrag},'
                f'"uuid":"{x[:8]}-{x[8:12]}-4{x[13:16]}-{x[16:20]}-{x[20:]}","event_time":"{t_et}",'
                f'"processed_time":"{secs[pt // 1_000_000]}{pt % 1_000_000:06d}","ip_address":"{e >> 56 | 1}.'
                f'{(e >> 48) & 255}.{(e >> 40) & 255}.{(e >> 32) & 255}","client_upload_time":"{t_up}",'
                f'"$insert_id":"{x[16:24]}-{x[24:28]}-4{x[29:32]}-{x[:4]}-{x[4:16]}","event_type":"{name}",'
                f'"server_upload_time":"{t_up}","event_id":{e % 10_000},"event_properties":{build(e2)},'
                f'"session_id":{hour_ms + up // 1000 - (e2 >> 20) % 1_800_000},"client_event_time":"{t_et}",'
                f"{static[prof]}}}"
            )

    def events(self, pop: Population, project_id: int, hour: datetime, part: int = 0) -> Iterator[dict]:
        """Full event dicts of one hour part (parsed from :meth:`lines`, so always identical)."""
        return map(json.loads, self.lines(pop, project_id, hour, part))
