"""The sandbox catalogue's Jira toolkit (specs only; behaviour is in ``jira_app``)."""

from __future__ import annotations

from router.sandbox.spec import ToolSpec, boolean, integer, obj, string, strings

_KEY = string("Issue key, e.g. 'OPS-12'.", examples=["OPS-12"])
_PROJECT = string("Project key, e.g. 'OPS'.", examples=["OPS"])
_MAX = integer("Maximum number of results.", minimum=1, maximum=100)

JIRA_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "JIRA_CREATE_ISSUE",
        "jira",
        "Create issue",
        "Creates a Jira issue (ticket) in a project with a summary, issue type, description, priority and "
        "labels. Returns the new issue's key (e.g. OPS-12) and id.",
        obj(
            {
                "project": _PROJECT,
                "summary": string("One-line summary (title) of the issue."),
                "issuetype": string("Issue type name.", examples=["Bug", "Task", "Incident"], default="Task"),
                "description": string("Issue description (plain text or Jira wiki markup)."),
                "labels": strings(
                    "Labels to set; labels cannot contain spaces.", examples=["logwarden", "sev2"]
                ),
                "priority": string("Priority name.", examples=["Highest", "High", "Medium", "Low"]),
                "assignee": string("Account id of the assignee."),
                "components": strings("Component names."),
                "due_date": string("Due date, YYYY-MM-DD."),
            },
            required=["project", "summary"],
        ),
        tags=("ticket", "bug", "file", "open", "new", "track", "incident", "issue"),
    ),
    ToolSpec(
        "JIRA_SEARCH_ISSUES",
        "jira",
        "Search issues",
        "Searches issues with JQL (e.g. project = OPS AND labels = lw-abc AND statusCategory != Done), or "
        "by project and labels. Use it to find an existing ticket before creating a new one.",
        obj(
            {
                "jql": string("JQL query.", examples=['project = OPS AND labels = "lw-abc123"']),
                "project": _PROJECT,
                "labels": strings("Only issues that have all of these labels."),
                "max_results": _MAX,
                "fields": strings("Fields to return.", examples=["summary", "status", "labels"]),
            }
        ),
        tags=("find", "jql", "query", "lookup", "existing", "ticket", "list"),
    ),
    ToolSpec(
        "JIRA_ADD_COMMENT",
        "jira",
        "Add comment",
        "Adds a comment to an issue, e.g. an update on an ongoing incident.",
        obj(
            {"issue_key": _KEY, "comment": string("Comment body (plain text or wiki markup).")},
            ["issue_key", "comment"],
        ),
        tags=("note", "update", "reply", "ticket", "write"),
    ),
    ToolSpec(
        "JIRA_GET_ISSUE",
        "jira",
        "Get issue",
        "Gets an issue's fields (summary, status, labels, description) by key.",
        obj({"issue_key": _KEY, "fields": strings("Fields to return.")}, ["issue_key"]),
        tags=("read", "fetch", "details", "ticket"),
    ),
    ToolSpec(
        "JIRA_TRANSITION_ISSUE",
        "jira",
        "Transition issue",
        "Moves an issue to another status (To Do, In Progress, Done), e.g. to close it once resolved.",
        obj(
            {
                "issue_key": _KEY,
                "transition": string(
                    "Target status name or transition id.", examples=["Done", "In Progress"]
                ),
                "comment": string("Optional comment added with the transition."),
            },
            ["issue_key", "transition"],
        ),
        tags=("close", "resolve", "status", "done", "workflow"),
    ),
    ToolSpec(
        "JIRA_LIST_ISSUE_COMMENTS",
        "jira",
        "List issue comments",
        "Lists the comments of an issue, oldest first.",
        obj({"issue_key": _KEY, "max_results": _MAX}, ["issue_key"]),
        tags=("read", "notes", "discussion"),
    ),
    ToolSpec(
        "JIRA_GET_TRANSITIONS",
        "jira",
        "Get transitions",
        "Lists the workflow transitions available for an issue in its current status.",
        obj({"issue_key": _KEY}, ["issue_key"]),
        tags=("workflow", "status", "options"),
    ),
    ToolSpec(
        "JIRA_EDIT_ISSUE",
        "jira",
        "Edit issue",
        "Edits fields of an existing issue: summary, description, labels, priority.",
        obj(
            {
                "issue_key": _KEY,
                "summary": string("New summary."),
                "description": string("New description."),
                "labels": strings("Replacement labels."),
                "priority": string("New priority name."),
            },
            ["issue_key"],
        ),
        tags=("update", "change", "modify", "ticket"),
    ),
    ToolSpec(
        "JIRA_ASSIGN_ISSUE",
        "jira",
        "Assign issue",
        "Assigns an issue to a user (or unassigns it).",
        obj(
            {"issue_key": _KEY, "account_id": string("Assignee account id; '-1' for the default assignee.")},
            ["issue_key"],
        ),
        tags=("owner", "assignee", "person"),
    ),
    ToolSpec(
        "JIRA_DELETE_ISSUE",
        "jira",
        "Delete issue",
        "Deletes an issue and, optionally, its subtasks.",
        obj(
            {"issue_key": _KEY, "delete_subtasks": boolean("Also delete subtasks.", default=False)},
            ["issue_key"],
        ),
        tags=("remove", "ticket"),
    ),
    ToolSpec(
        "JIRA_GET_ALL_PROJECTS",
        "jira",
        "Get all projects",
        "Lists the projects visible to the user, with keys and names.",
        obj({"max_results": _MAX, "start_at": integer("Index of the first result.", minimum=0)}),
        tags=("projects", "list", "browse"),
    ),
    ToolSpec(
        "JIRA_GET_PROJECT",
        "jira",
        "Get project",
        "Gets a project's details: lead, issue types, components.",
        obj({"project": _PROJECT}, ["project"]),
        tags=("project", "details"),
    ),
    ToolSpec(
        "JIRA_GET_ISSUE_TYPES",
        "jira",
        "Get issue types",
        "Lists the issue types available in a project (Bug, Task, Incident, ...).",
        obj({"project": _PROJECT}),
        tags=("types", "metadata"),
    ),
    ToolSpec(
        "JIRA_ADD_WATCHER_TO_ISSUE",
        "jira",
        "Add watcher",
        "Adds a user as a watcher of an issue so they get notified of changes.",
        obj(
            {"issue_key": _KEY, "account_id": string("Account id of the watcher.")},
            ["issue_key", "account_id"],
        ),
        tags=("follow", "subscribe", "notify"),
    ),
    ToolSpec(
        "JIRA_CREATE_ISSUE_LINK",
        "jira",
        "Link issues",
        "Links two issues with a link type (Relates, Blocks, Duplicates).",
        obj(
            {
                "inward_issue": _KEY,
                "outward_issue": _KEY,
                "link_type": string("Link type name.", examples=["Relates", "Blocks", "Duplicate"]),
            },
            ["inward_issue", "outward_issue", "link_type"],
        ),
        tags=("relate", "duplicate", "connect"),
    ),
    ToolSpec(
        "JIRA_FIND_USERS",
        "jira",
        "Find users",
        "Finds Jira users by name or email to get their account ids.",
        obj({"query": string("Name or email to search."), "max_results": _MAX}, ["query"]),
        tags=("people", "account", "lookup"),
    ),
    ToolSpec(
        "JIRA_ADD_ATTACHMENT",
        "jira",
        "Add attachment",
        "Attaches a text file (for example a log excerpt) to an issue.",
        obj(
            {
                "issue_key": _KEY,
                "filename": string("Attachment file name."),
                "content": string("File content."),
            },
            ["issue_key", "filename", "content"],
        ),
        tags=("file", "upload", "log"),
    ),
)
