"""Partner Center: the REST client, the SAM token exchange that feeds it, the per-call budget and the retry
loop both outbound clients share."""
