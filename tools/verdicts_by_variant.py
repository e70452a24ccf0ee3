"""Print the verdicts of What held per numerics variant, before and after the device check, as Markdown tables.

"Before" is the verdict on the 'cpu' units alone (what the book said before GPU units were stored); the variant
columns are each stored variant's verdict on its own models beside the 'cpu' verdict on the same models; "after" is
the book's verdict now (riemannstudy.evidence.judge_by_variant: 'device-sensitive' where a variant disagrees with the
CPU on the models both hold).  The second table is Table 1's RiemannOpt-vs-baseline cells per variant with the verdict
across variants (riemannstudy.evidence.table1_by_variant, the numerical floor included).  Everything is computed
from the stored units under results/; nothing is typed.  Closing notes quote it.

    python tools/verdicts_by_variant.py
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from riemannstudy import evidence as EV  # noqa: E402
from riemannstudy.tables import table  # noqa: E402


def claims_table(judged: list[dict]) -> str:
    """One row per claim: its 'cpu' verdict, each other variant's (with the 'cpu' verdict on that variant's models), the book's."""
    variants = sorted({v for c in judged for v in c["by_variant"]})
    rows = []
    for c in judged:
        bv = c["by_variant"]
        cells = [f"{bv[v]['verdict']} (cpu on its models: {bv[v]['cpu_same_models']})" if v in bv else "—" for v in variants]
        rows.append([c.get("id", "?"), c["cpu_verdict"], *cells, f"**{c['verdict']}**"])
    return table(["claim", "before: `cpu`", *(f"`{v}`" for v in variants), "after"], rows, align="l" * (len(variants) + 3))


def main() -> None:
    """Print both tables and the verdict counts before and after."""
    paper = EV.load_paper("riemannopt_table1")
    claims = json.loads((EV.PAPER_DIR / "claims.json").read_text())["claims"]
    judged = EV.judge_by_variant(claims, paper, EV.claim_records(claims))
    print(claims_table(judged))
    before, after = Counter(c["cpu_verdict"] for c in judged), Counter(c["verdict"] for c in judged)
    print(f"\nverdicts before: {dict(before)}; after: {dict(after)}\n")
    print(EV.table1_by_variant_markdown(EV.table1_by_variant(paper)))


if __name__ == "__main__":
    main()
