"""Demo: one erasure, so the Erasures page and an erasure's outcomes have something to show.

A throwaway person arrives (resolved like a pushed id, through audiences.identity) and is erased
through the function the console's "Erase this person" uses. Skipped once the workspace has an
erasure (the demo runs on every start). No segment is touched: the other parts pick the biggest
segment, and a size moved and moved back could change which of two equal ones comes first.
"""

from audiences.erasure import erase
from audiences.identity import resolve
from audiences.models import Erasure

DEMO_PERSON = "demo-erased-person"


def populate_demo(workspace, state: dict, out) -> None:
    if Erasure.objects.filter(workspace=workspace).exists():
        out.write("  Demo erasure: already done (see Erasures).")
        return
    resolve(workspace.pk, "user_id", [DEMO_PERSON], source="demo")
    result = erase(workspace, value=DEMO_PERSON, label="demo", via="console")
    out.write(f"  Demo erasure: a throwaway person erased (erasure #{result.erasure_id}, on the Erasures page).")
