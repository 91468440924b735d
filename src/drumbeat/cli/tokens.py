"""`drumbeat inbox-token USER_ID`: a token for a user's browser to read their in-app inbox."""

from typing import Annotated

import typer

from drumbeat.cli.context import client


def inbox_token(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user whose inbox the token opens")],
    ttl: Annotated[str, typer.Option(help="How long it is valid: 1d, 12h, 15m or seconds")] = "1d",
) -> None:
    """Print a token that opens USER_ID's inbox (GET /v1/inbox/USER_ID with
    `Authorization: Bearer TOKEN`) for TTL, signed with the workspace's key."""
    from drumbeat.cli.output import console

    console().print(client(ctx).inbox_token(user_id, ttl), soft_wrap=True, markup=False)
