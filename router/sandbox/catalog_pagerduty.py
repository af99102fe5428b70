"""The sandbox catalogue's PagerDuty toolkit (specs only; behaviour is in ``pagerduty_app``).

Argument names follow Composio's flattening of PagerDuty's REST bodies (``incident__title`` is
``incident.title``).
"""

from __future__ import annotations

from router.sandbox.spec import ToolSpec, boolean, integer, obj, string, strings

_ID = string("Incident id, e.g. 'Q2K8ZP3L0ABCDE'.")
_FROM = string("Email of a valid PagerDuty user making the request (the From header).")
_LIMIT = integer("Results per page.", minimum=1, maximum=100)
_OFFSET = integer("Offset to start pagination at.", minimum=0)

PAGERDUTY_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "PAGERDUTY_CREATE_INCIDENT_RECORD",
        "pagerduty",
        "Create incident",
        "Triggers (creates) an incident on a service, which pages the on-call responder per the escalation "
        "policy. With incident__incident_key (the dedup key), a second trigger while the incident is open "
        "returns the same incident instead of paging again. Returns the incident id.",
        obj(
            {
                "incident__type": string("Object type.", enum=["incident"], default="incident"),
                "incident__title": string("Short description of the problem, shown in the page."),
                "incident__service__id": string("Id of the service the incident belongs to, e.g. 'PSVC123'."),
                "incident__service__type": string(
                    "Reference type.", enum=["service_reference"], default="service_reference"
                ),
                "incident__urgency": string(
                    "Urgency; high pages immediately.", enum=["high", "low"], default="high"
                ),
                "incident__incident_key": string(
                    "Dedup key: triggers with the same key on the same service map to one open incident."
                ),
                "incident__body__type": string("Body type.", enum=["incident_body"], default="incident_body"),
                "incident__body__details": string("Additional details about the incident (plain text)."),
                "incident__priority__id": string("Id of the priority to set."),
                "incident__escalation_policy__id": string(
                    "Escalation policy to use instead of the service's."
                ),
                "from": _FROM,
            },
            required=["incident__title", "incident__service__id"],
        ),
        tags=("page", "trigger", "alert", "on-call", "oncall", "wake", "escalate", "incident", "outage"),
    ),
    ToolSpec(
        "PAGERDUTY_UPDATE_INCIDENT",
        "pagerduty",
        "Update incident",
        "Acknowledges or resolves an incident (or changes its urgency or title) by id. Resolve it when the "
        "problem has recovered.",
        obj(
            {
                "id": _ID,
                "incident__type": string(
                    "Reference type.", enum=["incident_reference"], default="incident_reference"
                ),
                "incident__status": string("New status.", enum=["acknowledged", "resolved"]),
                "incident__resolution": string("Resolution note, with status resolved."),
                "incident__title": string("New title."),
                "incident__urgency": string("New urgency.", enum=["high", "low"]),
                "from": _FROM,
            },
            required=["id"],
        ),
        tags=("resolve", "acknowledge", "ack", "close", "recover", "status", "incident"),
    ),
    ToolSpec(
        "PAGERDUTY_GET_INCIDENT",
        "pagerduty",
        "Get incident",
        "Gets an incident's details (status, urgency, service, incident key) by id.",
        obj({"id": _ID}, ["id"]),
        tags=("read", "fetch", "details", "incident"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_INCIDENTS",
        "pagerduty",
        "List incidents",
        "Lists incidents, optionally filtered by status, service or incident key (dedup key).",
        obj(
            {
                "statuses": strings("Only these statuses (triggered, acknowledged, resolved)."),
                "service_ids": strings("Only incidents of these services."),
                "incident_key": string("Only incidents with this incident key."),
                "limit": _LIMIT,
                "offset": _OFFSET,
            }
        ),
        tags=("find", "search", "open", "list", "incident"),
    ),
    ToolSpec(
        "PAGERDUTY_ADD_NOTE_TO_INCIDENT",
        "pagerduty",
        "Add note",
        "Adds a note to an incident's timeline.",
        obj({"id": _ID, "note__content": string("Note text."), "from": _FROM}, ["id", "note__content"]),
        tags=("comment", "timeline", "update"),
    ),
    ToolSpec(
        "PAGERDUTY_SNOOZE_INCIDENT",
        "pagerduty",
        "Snooze incident",
        "Snoozes an acknowledged incident for a duration, after which it re-triggers.",
        obj(
            {"id": _ID, "duration": integer("Seconds to snooze.", minimum=1), "from": _FROM},
            ["id", "duration"],
        ),
        tags=("delay", "postpone", "defer"),
    ),
    ToolSpec(
        "PAGERDUTY_MERGE_INCIDENTS",
        "pagerduty",
        "Merge incidents",
        "Merges source incidents into a target incident.",
        obj(
            {"id": _ID, "source_incident_ids": strings("Ids of the incidents to merge in."), "from": _FROM},
            ["id", "source_incident_ids"],
        ),
        tags=("combine", "duplicate", "dedupe"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_INCIDENT_ALERTS",
        "pagerduty",
        "List incident alerts",
        "Lists the alerts grouped into an incident.",
        obj({"id": _ID, "limit": _LIMIT}, ["id"]),
        tags=("alerts", "events", "grouped"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_SERVICES",
        "pagerduty",
        "List services",
        "Lists services, to find the service id to trigger incidents on.",
        obj({"query": string("Filter by service name."), "limit": _LIMIT, "offset": _OFFSET}),
        tags=("service", "id", "lookup", "catalog"),
    ),
    ToolSpec(
        "PAGERDUTY_GET_SERVICE",
        "pagerduty",
        "Get service",
        "Gets a service's details, including its escalation policy.",
        obj({"id": string("Service id.")}, ["id"]),
        tags=("service", "details"),
    ),
    ToolSpec(
        "PAGERDUTY_CREATE_SERVICE",
        "pagerduty",
        "Create service",
        "Creates a service with an escalation policy.",
        obj(
            {
                "service__name": string("Service name."),
                "service__description": string("Service description."),
                "service__escalation_policy__id": string("Escalation policy id."),
            },
            ["service__name", "service__escalation_policy__id"],
        ),
        tags=("new", "service", "setup"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_ONCALLS",
        "pagerduty",
        "List on-calls",
        "Lists who is on call now (or in a time range) per escalation policy and schedule.",
        obj(
            {
                "escalation_policy_ids": strings("Only these escalation policies."),
                "schedule_ids": strings("Only these schedules."),
                "earliest": boolean("Only the earliest on-call per policy and level."),
            }
        ),
        tags=("who", "oncall", "on-call", "responder", "rotation"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_ESCALATION_POLICIES",
        "pagerduty",
        "List escalation policies",
        "Lists escalation policies and their rules.",
        obj({"query": string("Filter by name."), "limit": _LIMIT}),
        tags=("escalation", "policy", "rules"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_SCHEDULES",
        "pagerduty",
        "List schedules",
        "Lists on-call schedules.",
        obj({"query": string("Filter by name."), "limit": _LIMIT}),
        tags=("rotation", "calendar", "shifts"),
    ),
    ToolSpec(
        "PAGERDUTY_LIST_USERS",
        "pagerduty",
        "List users",
        "Lists users of the account with their contact methods.",
        obj({"query": string("Filter by name or email."), "limit": _LIMIT}),
        tags=("people", "responders", "directory"),
    ),
    ToolSpec(
        "PAGERDUTY_CREATE_MAINTENANCE_WINDOW",
        "pagerduty",
        "Create maintenance window",
        "Creates a maintenance window during which services do not page.",
        obj(
            {
                "maintenance_window__start_time": string("Start, ISO 8601."),
                "maintenance_window__end_time": string("End, ISO 8601."),
                "maintenance_window__description": string("Why."),
                "maintenance_window__services": strings("Service ids."),
                "from": _FROM,
            },
            [
                "maintenance_window__start_time",
                "maintenance_window__end_time",
                "maintenance_window__services",
            ],
        ),
        tags=("silence", "mute", "downtime", "planned"),
    ),
)
