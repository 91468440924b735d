"""`drumbeat workspace create|list` and `drumbeat key create|list|revoke`: who may call the API."""

import time
from typing import Annotated, Any

import typer

from drumbeat.cli.context import state

workspace_app = typer.Typer(no_args_is_help=True, help="Workspaces: separate sets of data.")
key_app = typer.Typer(no_args_is_help=True, help="API keys of a workspace (shown once).")

FormatOpt = Annotated[str, typer.Option("--format", help="table or jsonl")]
WorkspaceOpt = Annotated[
    str | None, typer.Option("--workspace", help="Workspace [default: the global --workspace]")
]


def _store(ctx: typer.Context) -> Any:
    from drumbeat.store import open_store

    config = state(ctx).settings()
    return open_store(config.database_url, batch_size=config.batch_size)


def _workspace(ctx: typer.Context, store: Any, name: str | None) -> int:
    return int(store.workspace_id(name or state(ctx).settings().workspace, create=False))


def _when(stamp: float | None) -> str | None:
    from drumbeat.model.attributes import format_timestamp

    return format_timestamp(stamp) if stamp is not None else None


@workspace_app.command("create")
def workspace_create(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Workspace name")]
) -> None:
    """Make a new workspace (refused if the name is taken)."""
    from drumbeat.cli.output import console
    from drumbeat.store.keys import create_workspace

    store = _store(ctx)
    ws = create_workspace(store, name, time.time())
    console().print(f"workspace {name!r} created (id {ws})", markup=False)


@workspace_app.command("list")
def workspace_list(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """Every workspace: id, name, created."""
    from drumbeat.cli.output import print_rows
    from drumbeat.store.keys import list_workspaces

    rows = [(w["id"], w["name"], _when(w["created_at"])) for w in list_workspaces(_store(ctx))]
    print_rows(("id", "name", "created_at"), rows, fmt)


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    scope: Annotated[str, typer.Option(help="write (send data) or admin")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Make a key and print it: it is shown this once, only its hash is kept."""
    from drumbeat.cli.output import console, console_err
    from drumbeat.store.keys import create_key

    store = _store(ctx)
    key_id, token = create_key(store, _workspace(ctx, store, workspace), scope, time.time())
    console_err().print(f"key {key_id} ({scope}): keep it now, it is not shown again")
    console().print(token, soft_wrap=True)


@key_app.command("list")
def key_list(ctx: typer.Context, workspace: WorkspaceOpt = None, fmt: FormatOpt = "table") -> None:
    """The workspace's keys: id, prefix, scope, created, revoked (never the keys)."""
    from drumbeat.cli.output import print_rows
    from drumbeat.store.keys import list_keys

    store = _store(ctx)
    rows = [
        (k["id"], k["prefix"] + "…", k["scope"], _when(k["created_at"]), _when(k["revoked_at"]))
        for k in list_keys(store, _workspace(ctx, store, workspace))
    ]
    print_rows(("id", "prefix", "scope", "created_at", "revoked_at"), rows, fmt)


@key_app.command("revoke")
def key_revoke(
    ctx: typer.Context,
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (key list)")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Revoke a key of the workspace: requests with it get 401 from now on."""
    from drumbeat.cli.output import console
    from drumbeat.store.keys import revoke_key

    store = _store(ctx)
    revoke_key(store, _workspace(ctx, store, workspace), key_id, time.time())
    console().print(f"key {key_id} revoked")


@key_app.command("deliveries-secret")
def key_deliveries_secret(ctx: typer.Context, workspace: WorkspaceOpt = None) -> None:
    """Print the secret an email provider signs the bounces and complaints it posts to
    /v1/deliveries with (HMAC-SHA256 of the body). It is derived from the workspace's
    signing key (DRUMBEAT_SECRET_KEY, or the random one kept in the store)."""
    from drumbeat.channels.deliveries import deliveries_secret
    from drumbeat.channels.keys import SigningKeys
    from drumbeat.cli.output import console

    config = state(ctx).settings()
    store = _store(ctx)
    name = workspace or config.workspace
    _workspace(ctx, store, name)  # an unknown workspace is refused, not made
    console().print(deliveries_secret(SigningKeys(config, store)(name), name), soft_wrap=True)
