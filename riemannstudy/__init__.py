"""riemannstudy: the book's study layer, beside the riemannkit library.

It reads and writes the evidence and computes no attribution of its own (the library does): where each stored
number came from, the stored reference units, the statistics and verdicts of "the paper beside ours", and the
book's tables.  The library never imports it.

- :mod:`~riemannstudy.units`: stored reference units: names, numerics variants, checks, locks, atomic writes.
- :mod:`~riemannstudy.provenance`: the results folder, the code state (commit, code_sha256), device, versions;
  write-once JSON records.
- :mod:`~riemannstudy.runs`: a reference script's run: shared options, output folder, the photo-by-photo unit.
- :mod:`~riemannstudy.chapter`: a chapter's set-up: parameters checked before any work, profiles, provenance.
- :mod:`~riemannstudy.stats`: bootstrap CIs, paired differences and verdicts (numpy only).
- :mod:`~riemannstudy.evidence`: the papers' numbers beside ours, with CIs, and the claims' computed verdicts.
- :mod:`~riemannstudy.floor`: the numerical floor of a stored Table 1 unit.
- :mod:`~riemannstudy.placement`: which rule and which node placement at the same budget (the which-schedule study).
- :mod:`~riemannstudy.tables`: the one Markdown table formatter and the narrowing of tables for the page.
"""
