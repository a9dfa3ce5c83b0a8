"""The dashboard's login page, with the lockout of accounts/lockout.py around Django's."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import views as auth_views
from django.utils import timezone

from accounts.lockout import (
    client_address,
    login_failure_record,
    login_locked_until,
    login_success_record,
)


def lockout_message(until: datetime) -> str:
    minutes = max(1, round((until - timezone.now()).total_seconds() / 60))
    return (
        "Too many failed logins for this username from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


class LoginView(auth_views.LoginView):
    """Refuses a locked-out username and address before checking the password (429)."""

    def post(self, request, *args, **kwargs):
        until = login_locked_until(**self.attempt())
        if until is not None:
            return self.locked_out(until)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        login_success_record(**self.attempt())
        return super().form_valid(form)

    def form_invalid(self, form):
        until = login_failure_record(**self.attempt())
        if until is not None:
            return self.locked_out(until)
        return super().form_invalid(form)

    def attempt(self) -> dict:
        username = self.request.POST.get("username", "")[:150]
        return {"username": username, "address": client_address(self.request)}

    def locked_out(self, until: datetime):
        # Unbound: a bound form would check the password while the page renders.
        form = self.get_form_class()(self.request, initial={"username": self.attempt()["username"]})
        context = self.get_context_data(form=form, lockout=lockout_message(until))
        return self.render_to_response(context, status=429)
