"""Where a webhook-like channel posts: a person's own URL, else the channel's."""

from __future__ import annotations

from warroom.notify.channels import _url


def test_a_persons_own_hook_wins_over_the_shared_one() -> None:
    """carol's page (with her acknowledge link) goes to her Slack hook, not the shared #incidents one."""
    shared = "https://hooks.slack.example/T0/B0/shared"
    assert _url(shared, "https://hooks.slack.example/T0/B0/carol", "slack").endswith("/carol")
    assert _url(shared, "#incidents", "slack") == shared  # an audience's channel name: the channel's hook


def test_timelines_show_addresses_without_their_secrets() -> None:
    """Viewers read timelines: a hook URL is a credential in itself, a phone number private."""
    from warroom.notify.service import shown_address

    assert shown_address("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"
    assert shown_address("+1 555 010 2034") == "…34"
    assert shown_address("alice@acme.example") == "alice@acme.example"
    assert shown_address("#incidents") == "#incidents"
