"""Local stand-ins for the app's outside world, each a small threaded server on 127.0.0.1 that the real
clients talk to over the real protocol: App Service managed identity (`managed_identity`), Key Vault
(`key_vault`), Entra ID (`entra`) and Partner Center (`partner_center`), all started together by
`stack.Sandbox`. Never shipped (see .funcignore); used by the tests and by `make run`.
"""
