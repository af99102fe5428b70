"""The sandbox catalogue's Slack toolkit (specs only; behaviour is in ``slack_app``)."""

from __future__ import annotations

from router.sandbox.spec import ToolSpec, boolean, integer, obj, string

_CHANNEL = string(
    "Channel ID (C0123ABCD), or channel name with or without '#', e.g. 'alerts' or '#alerts'.",
    examples=["#alerts", "C01ABCDEF23"],
)
_TS = string(
    "Timestamp of the message (its id in Slack), e.g. '1700000000.000100'.", examples=["1700000000.000100"]
)
_MARKDOWN = string(
    "Message body in Markdown (bold, italics, lists, links, code); preferred over 'text' when formatted.",
)
_TEXT = string("Plain-text message body (used as the notification fallback when blocks are given).")
_BLOCKS = string("Block Kit layout blocks as a JSON-encoded array string; overrides text for display.")
_CURSOR = string("Pagination cursor from a previous response's next_cursor.")
_LIMIT = integer("Maximum number of items to return.", minimum=1, maximum=1000)

SLACK_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "SLACK_SEND_MESSAGE",
        "slack",
        "Send message",
        "Posts a message to a Slack channel, private group or direct message, optionally as a threaded "
        "reply. Returns the channel id and the message timestamp (ts) that identifies the message.",
        obj(
            {
                "channel": _CHANNEL,
                "markdown_text": _MARKDOWN,
                "text": _TEXT,
                "thread_ts": string("Timestamp of the parent message, to post this one as a threaded reply."),
                "reply_broadcast": boolean(
                    "With thread_ts: also show the reply in the channel.", default=False
                ),
                "blocks": _BLOCKS,
                "attachments": string("Legacy attachments as a JSON-encoded array string."),
                "username": string("Bot display name for this message (needs chat:write.customize)."),
                "icon_emoji": string("Emoji to use as the bot icon, e.g. ':rotating_light:'."),
                "icon_url": string("Image URL to use as the bot icon."),
                "unfurl_links": boolean("Unfurl text-based links.", default=True),
                "unfurl_media": boolean("Unfurl media links.", default=True),
                "link_names": boolean("Link @channel, @here and user names.", default=False),
                "mrkdwn": boolean("Interpret Slack mrkdwn in 'text'.", default=True),
                "parse": string("How to treat the message text.", enum=["none", "full"]),
            },
            required=["channel"],
        ),
        tags=("post", "notify", "chat", "channel", "alert", "announce", "message", "send"),
    ),
    ToolSpec(
        "SLACK_UPDATE_MESSAGE",
        "slack",
        "Update message",
        "Updates (edits) an existing Slack message identified by its channel and timestamp, replacing its "
        "text or blocks. Use it to update a status message instead of posting a new one.",
        obj(
            {
                "channel": _CHANNEL,
                "ts": _TS,
                "markdown_text": _MARKDOWN,
                "text": _TEXT,
                "blocks": _BLOCKS,
                "attachments": string("Legacy attachments as a JSON-encoded array string."),
                "as_user": boolean("Update the message as the authenticated user.", default=False),
                "link_names": boolean("Link @channel, @here and user names.", default=False),
                "parse": string("How to treat the message text.", enum=["none", "full"]),
            },
            required=["channel", "ts"],
        ),
        tags=("edit", "change", "modify", "chat", "message", "resolved", "status"),
    ),
    ToolSpec(
        "SLACK_DELETE_A_MESSAGE_FROM_A_CHAT",
        "slack",
        "Delete a message",
        "Deletes a message from a Slack channel or conversation, identified by channel and timestamp.",
        obj(
            {"channel": _CHANNEL, "ts": _TS, "as_user": boolean("Delete as the authenticated user.")},
            ["channel", "ts"],
        ),
        tags=("remove", "chat", "message"),
    ),
    ToolSpec(
        "SLACK_FETCH_CONVERSATION_HISTORY",
        "slack",
        "Fetch conversation history",
        "Fetches the messages of a channel or conversation in reverse chronological order, with optional "
        "time bounds and pagination.",
        obj(
            {
                "channel": _CHANNEL,
                "limit": _LIMIT,
                "oldest": string("Only messages after this Unix timestamp."),
                "latest": string("Only messages before this Unix timestamp."),
                "inclusive": boolean("Include messages exactly at oldest/latest."),
                "cursor": _CURSOR,
            },
            ["channel"],
        ),
        tags=("read", "list", "messages", "history", "channel"),
    ),
    ToolSpec(
        "SLACK_FETCH_MESSAGE_THREAD_FROM_A_CONVERSATION",
        "slack",
        "Fetch message thread",
        "Retrieves a thread: the parent message and its replies, by channel and the parent's timestamp.",
        obj({"channel": _CHANNEL, "ts": _TS, "limit": _LIMIT, "cursor": _CURSOR}, ["channel", "ts"]),
        tags=("read", "replies", "thread", "conversation"),
    ),
    ToolSpec(
        "SLACK_LIST_ALL_CHANNELS",
        "slack",
        "List all channels",
        "Lists the conversations (public and private channels) in the workspace with ids and names.",
        obj(
            {
                "limit": _LIMIT,
                "cursor": _CURSOR,
                "exclude_archived": boolean("Leave archived channels out.", default=False),
                "types": string(
                    "Comma-separated conversation types.", examples=["public_channel,private_channel"]
                ),
            }
        ),
        tags=("channels", "conversations", "list", "browse"),
    ),
    ToolSpec(
        "SLACK_FIND_CHANNELS",
        "slack",
        "Find channels",
        "Finds channels whose name, topic or purpose matches a search query.",
        obj(
            {
                "query": string("Text to search for in channel names, topics and purposes."),
                "exact_match": boolean("Match the channel name exactly.", default=False),
                "exclude_archived": boolean("Leave archived channels out.", default=True),
                "limit": _LIMIT,
            },
            ["query"],
        ),
        tags=("search", "lookup", "channel", "id"),
    ),
    ToolSpec(
        "SLACK_CREATE_CHANNEL",
        "slack",
        "Create channel",
        "Creates a public or private Slack channel, for example a dedicated incident war-room channel.",
        obj(
            {
                "name": string(
                    "Channel name: lowercase, no spaces, up to 80 characters.", examples=["inc-checkout"]
                ),
                "is_private": boolean("Create a private channel.", default=False),
                "team_id": string("Workspace id (Enterprise Grid only)."),
            },
            ["name"],
        ),
        tags=("new", "war room", "conversation", "open"),
    ),
    ToolSpec(
        "SLACK_SET_CONVERSATION_TOPIC",
        "slack",
        "Set conversation topic",
        "Sets the topic of a channel, shown in its header.",
        obj({"channel": _CHANNEL, "topic": string("The new topic (no formatting).")}, ["channel", "topic"]),
        tags=("header", "describe", "channel"),
    ),
    ToolSpec(
        "SLACK_INVITE_USERS_TO_A_SLACK_CHANNEL",
        "slack",
        "Invite users to a channel",
        "Invites one or more users to a channel by their user ids.",
        obj(
            {"channel": _CHANNEL, "users": string("Comma-separated user ids, e.g. 'U01,U02'.")},
            ["channel", "users"],
        ),
        tags=("add", "members", "people"),
    ),
    ToolSpec(
        "SLACK_ADD_REACTION_TO_AN_ITEM",
        "slack",
        "Add reaction",
        "Adds an emoji reaction to a message, identified by channel and timestamp.",
        obj(
            {
                "channel": _CHANNEL,
                "timestamp": _TS,
                "name": string("Emoji name without colons, e.g. 'eyes'."),
            },
            ["channel", "timestamp", "name"],
        ),
        tags=("emoji", "react", "acknowledge"),
    ),
    ToolSpec(
        "SLACK_PIN_AN_ITEM_TO_A_CHANNEL",
        "slack",
        "Pin an item",
        "Pins a message to a channel so it stays visible in the channel details.",
        obj({"channel": _CHANNEL, "timestamp": _TS}, ["channel", "timestamp"]),
        tags=("pin", "highlight", "message"),
    ),
    ToolSpec(
        "SLACK_SCHEDULE_MESSAGE",
        "slack",
        "Schedule message",
        "Schedules a message to be posted to a channel at a future time.",
        obj(
            {
                "channel": _CHANNEL,
                "post_at": integer("Unix timestamp (seconds) when the message should be posted."),
                "markdown_text": _MARKDOWN,
                "text": _TEXT,
                "thread_ts": string("Parent message timestamp, to schedule a threaded reply."),
            },
            ["channel", "post_at"],
        ),
        tags=("later", "reminder", "delayed", "future"),
    ),
    ToolSpec(
        "SLACK_SEND_EPHEMERAL_MESSAGE",
        "slack",
        "Send ephemeral message",
        "Sends a message visible only to one user in a channel.",
        obj(
            {"channel": _CHANNEL, "user": string("Id of the user who sees the message."), "text": _TEXT},
            ["channel", "user", "text"],
        ),
        tags=("private", "whisper", "only me"),
    ),
    ToolSpec(
        "SLACK_FIND_USERS",
        "slack",
        "Find users",
        "Finds workspace members by name, display name or email.",
        obj(
            {
                "search_query": string("Name, display name or email to look for."),
                "exact_match": boolean("Match exactly.", default=False),
                "limit": _LIMIT,
            },
            ["search_query"],
        ),
        tags=("people", "member", "lookup", "email"),
    ),
    ToolSpec(
        "SLACK_LIST_ALL_USERS",
        "slack",
        "List all users",
        "Lists all members of the workspace with their profile fields.",
        obj({"limit": _LIMIT, "cursor": _CURSOR, "include_locale": boolean("Include each user's locale.")}),
        tags=("people", "members", "directory"),
    ),
    ToolSpec(
        "SLACK_SEARCH_MESSAGES",
        "slack",
        "Search messages",
        "Searches messages across the workspace with Slack search syntax (in:#channel, from:@user, ...).",
        obj(
            {
                "query": string("Search query, e.g. 'checkout in:#alerts'."),
                "count": integer("Results per page.", minimum=1, maximum=100),
                "page": integer("Page number.", minimum=1),
                "sort": string("Sort field.", enum=["score", "timestamp"]),
                "sort_dir": string("Sort direction.", enum=["asc", "desc"]),
                "highlight": boolean("Highlight the matches."),
            },
            ["query"],
        ),
        tags=("find", "lookup", "query", "messages"),
    ),
    ToolSpec(
        "SLACK_UPLOAD_OR_CREATE_A_FILE_IN_SLACK",
        "slack",
        "Upload file",
        "Uploads a file or creates a text snippet and shares it in channels.",
        obj(
            {
                "channels": string("Comma-separated channel ids or names to share the file in."),
                "content": string("Text content of the file or snippet."),
                "filename": string("Name of the file."),
                "filetype": string("Slack file type, e.g. 'text', 'json', 'python'."),
                "initial_comment": string("Message text introducing the file."),
                "title": string("Title of the file."),
                "thread_ts": string("Parent message timestamp, to share in a thread."),
            },
            ["channels"],
        ),
        tags=("attach", "snippet", "log", "file", "share"),
    ),
)
