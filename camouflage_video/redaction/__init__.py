"""The redaction workflow: keep or remove chosen people, write the tracks a run found, take a reviewer's
corrections (regions, track overrides) and re-render from a reviewed tracks file without detecting again.

- :mod:`.people`: reference photos and the recognizer's verdict on each detected face;
- :mod:`.decide`: the fail-closed keep/remove decision and the anonymizer that applies it;
- :mod:`.files`: ``tracks.json`` and ``regions.json``, read and checked up front, written atomically;
- :mod:`.replay`: a tracks file in place of detection;
- :mod:`.review`: the self-contained HTML review page;
- :mod:`.stages`: what the options add to a run's stages.
"""
