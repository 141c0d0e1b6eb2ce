"""Loads the worker's JSON Schemas (the folder `schemas/` at the project's root) and validates
messages against them.

Every schema has an `$id` under https://ecp.example/schemas/v1/ and refers to the others by
relative reference (`envelope.json#/$defs/uuid`). Nothing is fetched from the network: all
references resolve inside the folder. Works with jsonschema 4.10 (Debian 12's python3-jsonschema,
`RefResolver`) and with newer releases that resolve through a `referencing.Registry`.
"""

import json
import pathlib
import threading

import jsonschema
import jsonschema.validators

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent.parent.parent / "schemas"

#: `type` of a worker message -> schema file that validates it.
SCHEMA_FOR_TYPE = {
    "accepted": "accepted.json",
    "result": "result.json",
    "E2LibvirtError": "e2libvirterror.json",
    "request_error": "request_error.json",
    "restore.outcome": "restore_outcome.json",
    "restore.summary": "restore_summary.json",
    "machine.event": "machine_event.json",
    "heartbeat": "heartbeat.json",
    "worker.started": "worker_started.json",
    "worker.stopping": "worker_stopping.json",
    "stats": "stats.json",
    "host_stop.outcome": "host_stop_outcome.json",
    "host_stop.summary": "host_stop_summary.json",
}

#: topic prefix on the events socket -> the `type` values it carries (topic is `<prefix>.<worker-id>`).
TOPIC_TYPES = {
    "ack": {"accepted"},
    "result": {"result"},
    "error.libvirt": {"E2LibvirtError"},
    "error.request": {"request_error"},
    "restore": {"restore.outcome", "restore.summary", "host_stop.outcome", "host_stop.summary"},
    "machine": {"machine.event"},
    "heartbeat": {"heartbeat"},
    "worker": {"worker.started", "worker.stopping"},
    "stats": {"stats"},
}

#: `type` -> topic prefix.
TOPIC_PREFIX_FOR_TYPE = {t: prefix for prefix, types in TOPIC_TYPES.items() for t in types}

ENVELOPE_FIELDS = ("v", "type", "worker", "run", "seq", "ts")


def expected_topic(message_type, worker_id):
    """The topic a message of `message_type` from `worker_id` must be published on, or None."""
    prefix = TOPIC_PREFIX_FOR_TYPE.get(message_type)
    return None if prefix is None else f"{prefix}.{worker_id}"


def strip_envelope(message):
    """The message without its envelope fields (type kept), e.g. to compare a published
    E2LibvirtError with the record a result carries inline."""
    return {k: v for k, v in message.items() if k not in ENVELOPE_FIELDS or k == "type"}


def _refuse_remote(uri):
    raise LookupError(f"schema reference {uri!r} is not in {SCHEMA_DIR}; nothing is fetched remotely")


class SchemaSet:
    """All schemas of a folder, each checked against its metaschema, with a validator per file."""

    def __init__(self, directory=SCHEMA_DIR):
        self.directory = pathlib.Path(directory)
        self.by_file = {}
        for path in sorted(self.directory.glob("*.json")):
            with open(path, encoding="utf-8") as f:
                self.by_file[path.name] = json.load(f)
        if not self.by_file:
            raise FileNotFoundError(f"no schemas in {self.directory}")
        self.by_id = {}
        for name, schema in self.by_file.items():
            schema_id = schema.get("$id")
            if not schema_id or not schema_id.endswith("/" + name):
                raise ValueError(f"{name}: $id {schema_id!r} must end with /{name}")
            self.by_id[schema_id] = schema
            jsonschema.validators.validator_for(schema).check_schema(schema)
        self._registry = self._make_registry()
        self._validators = {}
        # jsonschema 4.10's RefResolver keeps a mutable scope stack: one validation at a time
        # (the conformance client validates on its subscriber thread and on the test's thread).
        self._lock = threading.RLock()

    def _make_registry(self):
        try:
            from referencing import Registry, Resource
            from referencing.jsonschema import DRAFT202012
        except ImportError:
            return None
        resources = [
            (schema_id, Resource.from_contents(schema, default_specification=DRAFT202012))
            for schema_id, schema in self.by_id.items()
        ]
        return Registry().with_resources(resources)

    def validator(self, file_name):
        """A validator for the schema in `file_name` (e.g. "result.json")."""
        with self._lock:
            return self._validator(file_name)

    def _validator(self, file_name):
        cached = self._validators.get(file_name)
        if cached is not None:
            return cached
        schema = self.by_file[file_name]
        cls = jsonschema.validators.validator_for(schema)
        format_checker = jsonschema.FormatChecker()
        validator = None
        if self._registry is not None:
            try:  # jsonschema >= 4.18
                validator = cls(schema, registry=self._registry, format_checker=format_checker)
            except TypeError:
                validator = None
        if validator is None:  # jsonschema 4.10 (Debian 12)
            resolver = jsonschema.RefResolver(
                base_uri=schema["$id"],
                referrer=schema,
                store=dict(self.by_id),
                handlers={"http": _refuse_remote, "https": _refuse_remote},
            )
            validator = cls(schema, resolver=resolver, format_checker=format_checker)
        self._validators[file_name] = validator
        return validator

    def errors(self, file_name, instance):
        """Every validation error of `instance` against `file_name`, as readable strings."""
        with self._lock:
            found = sorted(
                self._validator(file_name).iter_errors(instance),
                # An unevaluatedProperties error mostly echoes another failure (a failed
                # subschema evaluates nothing), so the cause comes first.
                key=lambda e: (e.validator == "unevaluatedProperties", [str(p) for p in e.absolute_path]),
            )
            return [_describe(e) for e in found]

    def message_errors(self, message):
        """Validation errors of a worker message against the schema for its `type` (the
        envelope's schema when the type is unknown, which then fails on `type`)."""
        if not isinstance(message, dict):
            return [f"message is not a JSON object: {message!r:.200}"]
        file_name = SCHEMA_FOR_TYPE.get(message.get("type"), "envelope.json")
        return self.errors(file_name, message)

    def check_message(self, message):
        """Raises AssertionError naming every violation of the message's schema."""
        problems = self.message_errors(message)
        assert not problems, _report(message, problems)

    def check(self, file_name, instance):
        problems = self.errors(file_name, instance)
        assert not problems, _report(instance, problems, file_name)


def _describe(error):
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    text = f"{where}: {error.message}"
    if error.context:  # anyOf/oneOf/if: show the nested causes that matter most
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            inner = "/".join(str(p) for p in best.absolute_path) or "(root)"
            text += f" [{inner}: {best.message}]"
    return text


def _report(instance, problems, file_name=None):
    head = f"does not conform to {file_name}" if file_name else "does not conform to its schema"
    body = json.dumps(instance, sort_keys=True)[:2000]
    return f"{body}\n  {head}:\n    " + "\n    ".join(problems)
