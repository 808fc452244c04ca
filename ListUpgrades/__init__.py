import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.upgrade_list import list_upgrades  # on the first call: docs/design.md, Performance

    return list_upgrades(req)
