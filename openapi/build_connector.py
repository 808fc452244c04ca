"""Derive the Power Automate custom connector (Swagger 2.0) from openapi/openapi.yaml, deterministically.

    python openapi/build_connector.py                # rewrite openapi/connector/apiDefinition.swagger.json
    python openapi/build_connector.py --check        # exit 1 when the committed file is not the generated one
    python openapi/build_connector.py --host contoso-upgrades.azurewebsites.net --out build/connector
                                                     # a copy with your Function App's host, ready to import

The connector is generated rather than kept by hand so that it cannot drift from the contract: the same
operations (operationId, summary), parameters, statuses, headers and response schemas, translated to what
Swagger 2.0 and the Power Platform connector designer understand:
- `type: [T, "null"]` and `oneOf: [null, X]` become `T` / `X` with `x-nullable: true`; `const` becomes a
  one-value `enum`; `title` becomes `x-ms-summary` (the label Power Automate shows); `examples[0]` becomes
  `example`; `not`/`if`/`then`/`else` (status-specific problem rules) are dropped.
- Schemas are inlined; the response bodies are named definitions: UpgradeRequest, AcceptedUpgrade,
  UpgradeStatus, BatchRequest, Batch, BatchCustomerPage and
  Problem (every 4xx/5xx, whatever its status-specific narrowing in the spec).
- An operation marked `x-ms-long-running-operation` gets, besides its own `202`, a `200` that is the `200` of
  its `x-polling-operation`: that is the body the action outputs once Power Automate has followed `Location`
  to the end, so the designer offers the final status's fields as dynamic content.
- Operations marked `x-connector-omit` are left out: the anonymous follow routes are where `Location` points,
  which Power Automate follows by itself, not actions a flow author picks.
- Security: OAuth 2.0 with Microsoft Entra ID (`oauth2_auth`, authorization code: each connection signs a
  user in; the token's `roles` are the app roles assigned to that user). apiProperties.json declares the
  matching `aad` identity provider; docs/power-automate.md says how to set its client id and resource, and how
  to use a caller key instead. `host` is a placeholder unless `--host` is given.
Only PyYAML and the standard library are needed.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SPEC_PATH = HERE / "openapi.yaml"
CONNECTOR_DIR = HERE / "connector"
DEFINITION_PATH = CONNECTOR_DIR / "apiDefinition.swagger.json"
PLACEHOLDER_HOST = "your-function-app.azurewebsites.net"
CONNECTOR_TITLE = "Partner Center Upgrades"  # connector names are kept short in the Power Platform UI
CONNECTOR_DESCRIPTION = (
    "Upgrade CSP customers from legacy Azure subscriptions to the Azure plan through Partner Center, "
    "and follow each upgrade to its final status."
)
SECURITY_NAME = "oauth2_auth"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Schema keywords Swagger 2.0 shares with JSON Schema 2020-12 and that the designer understands.
KEPT_KEYWORDS = (
    "type",
    "format",
    "description",
    "pattern",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
)
DEFINITION_FOR_COMPONENT = {
    "UpgradeRequest": "UpgradeRequest",
    "AcceptedUpgrade": "AcceptedUpgrade",
    "UpgradeStatus": "UpgradeStatus",
    "UpgradeStatusInProgress": "UpgradeStatus",
    "UpgradeStatusFinal": "UpgradeStatus",
    "Problem": "Problem",
    "Health": "Health",
    "UpgradeList": "UpgradeList",
    "Eligibility": "Eligibility",
    "HealthHealthy": "Health",
    "HealthUnhealthy": "Health",
    "BatchRequest": "BatchRequest",
    "Batch": "Batch",
    "BatchCustomerPage": "BatchCustomerPage",
}


class ConnectorBuildError(Exception):
    """The spec uses something this translation does not know how to express in Swagger 2.0."""


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.safe_load(handle)
    return spec


def build(spec: dict[str, Any], host: str = PLACEHOLDER_HOST) -> dict[str, Any]:
    """The connector's apiDefinition.swagger.json document for `spec` (an OpenAPI 3.1 document)."""
    return _Builder(spec).document(host)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def definition_name(spec: dict[str, Any], ref: str) -> str:
    """The connector definition that a response schema `$ref` of the spec becomes."""
    name = ref.rsplit("/", 1)[-1]
    if name in DEFINITION_FOR_COMPONENT:
        return DEFINITION_FOR_COMPONENT[name]
    if name.startswith("Problem"):
        return "Problem"
    raise ConnectorBuildError(f"no connector definition for response schema {ref}")


class _Builder:
    """The connector document: paths, operations, parameters and responses; schemas are `_Schemas`' job."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.schemas = _Schemas(spec)

    def document(self, host: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for path, item in self.spec["paths"].items():
            operations = {
                method: self.operation(item[method])
                for method in HTTP_METHODS
                if method in item and not item[method].get("x-connector-omit")
            }
            if operations:
                paths[path] = operations
        return {
            "swagger": "2.0",
            "info": {
                "title": CONNECTOR_TITLE,
                "description": CONNECTOR_DESCRIPTION,
                "version": self.spec["info"]["version"],
                "contact": copy.deepcopy(self.spec["info"].get("contact", {})),
            },
            "host": host,
            "basePath": "/",
            "schemes": ["https"],
            "consumes": ["application/json"],
            "produces": ["application/json", "application/problem+json"],
            "paths": paths,
            "definitions": dict(sorted(self.schemas.definitions.items())),
            "parameters": {},
            "responses": {},
            "securityDefinitions": {
                SECURITY_NAME: {
                    "type": "oauth2",
                    "flow": "accessCode",
                    "authorizationUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
                    "tokenUrl": "https://login.windows.net/common/oauth2/authorize",
                    "scopes": {},
                    "description": "Microsoft Entra ID: a token for the app's API, with the app roles of the user.",
                }
            },
            "security": [{SECURITY_NAME: []}],
            "tags": [],
        }

    def operation(self, source: dict[str, Any]) -> dict[str, Any]:
        resolve = self.schemas.resolve
        result: dict[str, Any] = {
            "summary": source["summary"],
            "description": _first_paragraph(source.get("description", source["summary"])),
            "operationId": source["operationId"],
        }
        if "x-ms-visibility" in source:
            result["x-ms-visibility"] = source["x-ms-visibility"]
        parameters = [self.parameter(resolve(p)) for p in source.get("parameters", [])]
        if "requestBody" in source:
            parameters.append(self.body(resolve(source["requestBody"])))
        result["parameters"] = parameters
        responses = {status: self.response(resolve(r)) for status, r in source["responses"].items()}
        if source.get("x-ms-long-running-operation"):
            result["x-ms-long-running-operation"] = True
            final = self.polled_final_response(source)
            responses = {"200": final, **responses}
        result["responses"] = dict(sorted(responses.items()))
        return result

    def polled_final_response(self, source: dict[str, Any]) -> dict[str, Any]:
        target = source.get("x-polling-operation")
        for item in self.spec["paths"].values():
            for method in HTTP_METHODS:
                if method in item and item[method]["operationId"] == target:
                    final = self.response(self.schemas.resolve(item[method]["responses"]["200"]))
                    final["description"] = (
                        "The final status of the upgrade: the answer of its Location once it stopped answering "
                        "202 (the action waits for it)."
                    )
                    return final
        raise ConnectorBuildError(f"{source['operationId']}: x-polling-operation {target!r} has no 200 response")

    def parameter(self, source: dict[str, Any]) -> dict[str, Any]:
        schema = self.schemas.schema(source["schema"])
        result: dict[str, Any] = {
            "name": source["name"],
            "in": source["in"],
            "required": bool(source.get("required", False)),
            "type": schema.pop("type"),
        }
        if "x-ms-summary" in source:
            result["x-ms-summary"] = source["x-ms-summary"]
        result["description"] = " ".join(source.get("description", "").split())
        for key in ("format", "pattern", "minLength", "maxLength", "minimum", "maximum", "default", "enum"):
            if key in schema:
                result[key] = schema[key]
        if "x-ms-visibility" in source:
            result["x-ms-visibility"] = source["x-ms-visibility"]
        return result

    def body(self, source: dict[str, Any]) -> dict[str, Any]:
        media = source["content"]["application/json"]
        return {
            "name": "body",
            "in": "body",
            "required": bool(source.get("required", False)),
            "description": " ".join(source.get("description", "").split()),
            "schema": self.schemas.named(media["schema"]),
        }

    def response(self, source: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"description": _first_sentence(source["description"])}
        content = source.get("content", {})
        if content:
            media = content.get("application/json") or content.get("application/problem+json")
            if media is None:
                raise ConnectorBuildError(f"unsupported response media types {sorted(content)}")
            result["schema"] = self.schemas.named(media["schema"])
        headers = {}
        for name, reference in source.get("headers", {}).items():
            header = self.schemas.resolve(reference)
            schema = self.schemas.schema(header["schema"])
            converted: dict[str, Any] = {"type": schema["type"]}
            if "format" in schema:
                converted["format"] = schema["format"]
            converted["description"] = " ".join(header.get("description", "").split())
            headers[name] = converted
        if headers:
            result["headers"] = headers
        return result


class _Schemas:
    """JSON Schema 2020-12 from the spec as inlined Swagger 2.0 schemas, and the named definitions used so far."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.definitions: dict[str, Any] = {}

    def named(self, source: dict[str, Any]) -> dict[str, Any]:
        """A reference to the definition a request or response body becomes (added on first use)."""
        ref = source.get("$ref")
        if ref is None:
            raise ConnectorBuildError("request and response bodies must reference a component schema")
        name = definition_name(self.spec, ref)
        if name not in self.definitions:
            base = "#/components/schemas/" + next(k for k, v in DEFINITION_FOR_COMPONENT.items() if v == name)
            self.definitions[name] = self.schema({"$ref": base})
        return {"$ref": f"#/definitions/{name}"}

    def schema(self, source: Any) -> dict[str, Any]:
        """`source` (JSON Schema 2020-12) as an inlined Swagger 2.0 schema."""
        if not isinstance(source, dict):
            raise ConnectorBuildError(f"boolean schemas cannot be translated: {source!r}")
        local = {k: v for k, v in source.items() if k != "$ref"}
        if "$ref" in source:
            result = self.schema(self.resolve({"$ref": source["$ref"]}))
            return self._overlay(result, self.schema(local) if _has_annotations(local) else {})
        if "oneOf" in source:
            variants = [v for v in source["oneOf"] if v != {"type": "null"}]
            if len(variants) != 1 or len(source["oneOf"]) != 2:
                raise ConnectorBuildError(f"only `oneOf: [null, X]` can be translated, not {source['oneOf']!r}")
            result = self.schema(variants[0])
            result["x-nullable"] = True
            return self._overlay(result, self.schema({k: v for k, v in local.items() if k != "oneOf"}))
        if "allOf" in source:
            # [base, status-specific narrowing]: the connector keeps the base (Swagger 2.0 cannot say `const`
            # inside allOf in a way the designer merges).
            return self.schema(source["allOf"][0])
        result: dict[str, Any] = {}
        if "title" in source:
            result["x-ms-summary"] = source["title"]
        for key in KEPT_KEYWORDS:
            if key in source:
                result[key] = copy.deepcopy(source[key])
        if "description" in result:
            result["description"] = " ".join(str(result["description"]).split())
        if isinstance(result.get("type"), list):
            types = [t for t in result["type"] if t != "null"]
            if len(types) != 1:
                raise ConnectorBuildError(f"cannot translate type {result['type']!r}")
            result["type"] = types[0]
            result["x-nullable"] = True
        if "const" in source:
            result["enum"] = [source["const"]]
        if source.get("examples"):
            result["example"] = source["examples"][0]
        if "properties" in source:
            result["properties"] = {name: self.schema(s) for name, s in source["properties"].items()}
        if "items" in source:
            result["items"] = self.schema(source["items"])
        if "additionalProperties" in source:
            extra = source["additionalProperties"]
            result["additionalProperties"] = extra if isinstance(extra, bool) else self.schema(extra)
        if "x-ms-visibility" in source:
            result["x-ms-visibility"] = source["x-ms-visibility"]
        return result

    @staticmethod
    def _overlay(base: dict[str, Any], annotations: dict[str, Any]) -> dict[str, Any]:
        for key in ("x-ms-summary", "description", "x-ms-visibility"):
            if key in annotations:
                base[key] = annotations[key]
        return base

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """`node` with its local `$ref` followed (any part of the spec: parameters and responses too)."""
        while "$ref" in node and len(node) == 1:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ConnectorBuildError(f"only local references are supported: {ref}")
            target: Any = self.spec
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


def _has_annotations(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("title", "description", "x-ms-visibility"))


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n", 1)[0].split())


def _first_sentence(text: str) -> str:
    paragraph = _first_paragraph(text)
    head, dot, _ = paragraph.partition(". ")
    return head + ("." if dot else "")


_HOST = re.compile(r"(?=.{1,253}(:|$))([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(:[0-9]{1,5})?")


def host_name(value: str) -> str:
    """A Swagger 2.0 `host`: a host name with an optional port, no scheme, path or trailing slash."""
    if not _HOST.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a host name: give the Function App's host only, e.g. contoso-upgrades.azurewebsites.net "
            "(no https://, no path, no trailing /)"
        )
    return value.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", type=host_name, default=PLACEHOLDER_HOST, help="the Function App host name, e.g. x.azurewebsites.net"
    )
    parser.add_argument("--out", type=Path, help="write apiDefinition.swagger.json + apiProperties.json here")
    parser.add_argument("--check", action="store_true", help="fail when the committed definition is out of date")
    args = parser.parse_args(argv)

    text = render(build(load_spec(), args.host))
    if args.check:
        if DEFINITION_PATH.read_text(encoding="utf-8") != text:
            print(f"{DEFINITION_PATH} is out of date: run python openapi/build_connector.py", file=sys.stderr)
            return 1
        return 0
    out = args.out or CONNECTOR_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "apiDefinition.swagger.json").write_text(text, encoding="utf-8")
    if out.resolve() != CONNECTOR_DIR.resolve():
        properties = (CONNECTOR_DIR / "apiProperties.json").read_text(encoding="utf-8")
        (out / "apiProperties.json").write_text(properties, encoding="utf-8")
    print(f"wrote {out / 'apiDefinition.swagger.json'} (host {args.host})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
