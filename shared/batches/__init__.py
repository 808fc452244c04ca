"""Batches: report on, or upgrade, many customers (or all of them) through the batch queue (docs/design.md,
"Batches").

    model       batch and customer-row records (plain data), outcomes, statuses
    resource    the batch resource callers and callbacks see, and its URLs
    store       batch entity + one row per customer in one Table partition (ETag, entity-group transactions)
    links       which batches wait on an upgrade (so tracking can settle their rows when it is final)
    messages    the batch queue's message kinds and sending them
    pacing      the shared hold after a 429 and the shared, adaptive pace of batch calls
    outcomes    one customer's work: eligibility, or the create path, turned into an outcome
    worker      handling one batch-queue message
    completion  finishing a batch once and sending its one callback
    service     starting a batch (Idempotency-Key, rows, first message) and reading it
    export      the customers as CSV
    cancel      cancelling: pending rows become cancelled, in-flight upgrades tracked to their end
    estimate    estimated completion from the rows left and the shared pace
    reasons     the most common notEligible and error reasons (the progress page)
(What callers send is validated in shared/api: batch_input, campaign_input, csv_upload.)
"""
