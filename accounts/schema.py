"""Tells the OpenAPI schema how API keys authenticate: `Authorization: Bearer <key>`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A key from `manage.py create_api_key`; its scopes limit its calls.",
        }
