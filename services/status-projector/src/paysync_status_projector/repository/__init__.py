"""All SQL of the status-projector, one module per table group.

statements.py (compiled statements, rows as one JSON parameter), payments.py (`payments`,
`payment_refs`, `observations`: lock, history, merged write), parked.py (`parked_observations`),
issues.py (`sync_issues`), drift.py (domain rows against payments), domain_rows.py (the domain
tables), outbox.py (`outbox`).
"""
