"""The night's stages, one module each: ingest -> validate -> score -> publish -> manifest.

Each stage is a function of the night's ``RunConfig`` and the ``Handover`` it reads and
writes its staged tables through; it returns a small summary. ``therapy_claims.runtime``
runs them in one or two processes, the Airflow DAG as one task each.
"""
