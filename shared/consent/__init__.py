"""The SAM consent over time: the daily keep-alive (`keep_alive`) and how healthy it is (`health`)."""
