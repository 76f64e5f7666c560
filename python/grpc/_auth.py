"""AuthMetadataPlugins for bearer tokens (grpcio's ``grpc._auth``): one over
Google credentials objects (oauth2client / google-auth), one over a fixed
access token. Each answers with an ``authorization: Bearer <token>`` entry."""

import inspect

import grpc


def _bearer(callback, token, error):
    callback((("authorization", "Bearer {}".format(token)),), error)


class GoogleCallCredentials(grpc.AuthMetadataPlugin):
    """Asks credentials with get_access_token() for a token on every call;
    JWT credentials (whose get_access_token takes additional_claims) are
    given the call's service URL as their audience."""

    def __init__(self, credentials):
        self._credentials = credentials
        parameters = inspect.signature(credentials.get_access_token).parameters
        self._is_jwt = "additional_claims" in parameters

    def __call__(self, context, callback):
        try:
            if self._is_jwt:
                info = self._credentials.get_access_token(
                    additional_claims={"aud": context.service_url})
            else:
                info = self._credentials.get_access_token()
            token = info.access_token
        except Exception as error:  # pylint: disable=broad-except
            _bearer(callback, None, error)
        else:
            _bearer(callback, token, None)


class AccessTokenAuthMetadataPlugin(grpc.AuthMetadataPlugin):
    """Sends one fixed access token."""

    def __init__(self, access_token):
        self._access_token = access_token

    def __call__(self, context, callback):
        _bearer(callback, self._access_token, None)
