"""trigd's runtime client for Python Lambda handlers.

trigd starts this file as `python3 bootstrap.py` with cwd = the function's code directory and the Lambda
environment variables set. It imports the handler once, then loops on the Runtime API (2018-06-01):
GET next -> call the handler -> POST the result or the error. Standard library only, Python >= 3.8.
"""

import http.client
import importlib
import json
import logging
import os
import sys
import time
import traceback

RUNTIME = "/2018-06-01/runtime"
JSON_HEADERS = {"Content-Type": "application/json"}

FUNCTION_NAME = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
FUNCTION_VERSION = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
MEMORY_SIZE = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")  # a string, as in the real runtime
LOG_GROUP = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
LOG_STREAM = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")

current_request_id = ""  # read by the log formatter; empty during init


class Fault(Exception):
    """An error whose Lambda errorType is not simply the exception's class name."""

    def __init__(self, error_type, message, stack=None):
        super().__init__(message)
        self.error_type, self.message, self.stack = error_type, message, stack or []


class CognitoIdentity:
    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    def __init__(self, data):
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    def __init__(self, data):
        client = data.get("client")
        self.client = Client(client) if client is not None else None
        self.custom = data.get("custom")
        self.env = data.get("env")


class LambdaContext:
    def __init__(self, request_id, deadline_ms, arn, identity, client_context, tenant_id):
        self.function_name = FUNCTION_NAME
        self.function_version = FUNCTION_VERSION
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = MEMORY_SIZE
        self.aws_request_id = request_id
        self.log_group_name = LOG_GROUP
        self.log_stream_name = LOG_STREAM
        self.identity = identity
        self.client_context = client_context
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()  # may lack a newline, so line buffering alone would hold it back


class LambdaFormatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self):
        super().__init__("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                         "%Y-%m-%dT%H:%M:%S")

    def format(self, record):
        record.aws_request_id = current_request_id
        # One record = one output line (trigd reads line by line); the real runtime also uses \r.
        return super().format(record).replace("\n", "\r")


def json_default(obj):
    # boto3's DynamoDB layer hands out Decimal; the managed runtime serialises it, so do we. Looking it up in
    # sys.modules avoids importing decimal: if it was never imported, obj cannot be a Decimal.
    dec = sys.modules.get("decimal")
    if dec is not None and isinstance(obj, dec.Decimal):
        return int(obj) if obj.is_finite() and obj == obj.to_integral_value() else float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def frames(tb, skip=1):
    # skip=1 drops this file's own frame (the call site), like the managed runtime's traces. Frames of the
    # import machinery only appear for init errors and say nothing about the user's code: drop them too.
    kept = [f for f in traceback.extract_tb(tb)[skip:]
            if not (f.filename.startswith("<frozen importlib") or f.filename == importlib.__file__)]
    return traceback.format_list(kept)


def error_body(exc, request_id, skip=1):
    if isinstance(exc, Fault):
        return {"errorMessage": exc.message, "errorType": exc.error_type, "requestId": request_id,
                "stackTrace": exc.stack}
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
            "stackTrace": frames(exc.__traceback__, skip)}


def log_error(body):
    # Same shape as the managed runtime: \r between lines and non-breaking-space indentation, so a whole
    # traceback stays one line (one log event) for a line-oriented reader such as trigd.
    lines = ["[ERROR] %s: %s" % (body["errorType"], body["errorMessage"]), "Traceback (most recent call last):"]
    for entry in body["stackTrace"]:
        for line in entry.splitlines():
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\r".join(lines).replace("\n", "\r") + "\n")


def error_headers(body, extra=None):
    headers = dict(JSON_HEADERS, **(extra or {}))
    error_type = body["errorType"]
    if error_type.isascii() and error_type.isprintable():  # a non-ASCII class name is not a valid header
        headers["Lambda-Runtime-Function-Error-Type"] = error_type
    return headers


def load_handler(spec):
    module_name, dot, attr = spec.rpartition(".")
    if not dot or not module_name or not attr:
        raise Fault("Runtime.MalformedHandlerName",
                    "Bad handler '%s': not enough values to unpack (expected 2, got 1)" % spec)
    module_name = module_name.replace("/", ".")
    if module_name in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict",
                    "Cannot use built-in module %s as a handler module" % module_name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise Fault("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, e),
                    frames(e.__traceback__))  # empty when the module itself is missing
    except SyntaxError as e:
        stack = ['  File "%s" Line %s\n    %s\n' % (e.filename, e.lineno, (e.text or "").strip())]
        raise Fault("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (module_name, e), stack)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (attr, module_name))


class RuntimeApi:
    """One keep-alive HTTP/1.1 connection to trigd, reopened when it drops."""

    def __init__(self, address):
        self.conn = http.client.HTTPConnection(address)  # no timeout: `next` may block for hours

    def call(self, method, path, body=None, headers=JSON_HEADERS):
        # A second attempt covers a kept-alive connection that the server closed while we were idle; if the
        # fresh connection fails too, the error is real.
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body, headers)
                resp = self.conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    raise


def parse_json_header(value, what):
    try:
        return json.loads(value)
    except ValueError as e:
        raise Fault("Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON: %s" % (what, e))


def handle(api, handler, headers, body):
    global current_request_id
    # One pass into a plain dict: HTTPMessage.get() re-scans every header per lookup, and names are
    # case-insensitive (a Rust server sends them lowercase).
    headers = {name.lower(): value for name, value in headers.items()}
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    current_request_id = request_id
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    invocation_id = headers.get("lambda-runtime-invocation-id")
    echo = {"Lambda-Runtime-Invocation-Id": invocation_id} if invocation_id else None
    try:
        try:
            event = json.loads(body) if body else {}  # an Invoke without a payload means {}
        except ValueError as e:
            raise Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)
        cognito = headers.get("lambda-runtime-cognito-identity")
        client = headers.get("lambda-runtime-client-context")
        context = LambdaContext(
            request_id, int(headers.get("lambda-runtime-deadline-ms") or 0),
            headers.get("lambda-runtime-invoked-function-arn", ""),
            CognitoIdentity(parse_json_header(cognito, "Cognito Identity") if cognito else {}),
            ClientContext(parse_json_header(client, "Client Context")) if client else None,
            headers.get("lambda-runtime-aws-tenant-id"))
        result = handler(event, context)
        try:
            payload = json.dumps(result, default=json_default).encode()
        except (TypeError, ValueError, OverflowError) as e:
            raise Fault("Runtime.MarshalError", "Unable to marshal response: %s" % e)
    except Exception as e:  # SystemExit and KeyboardInterrupt end the process, as in the real runtime
        err = error_body(e, request_id)
        log_error(err)
        status, _, reply = api.call("POST", "%s/invocation/%s/error" % (RUNTIME, request_id),
                                    json.dumps(err).encode(), error_headers(err, echo))
    else:
        status, _, reply = api.call("POST", "%s/invocation/%s/response" % (RUNTIME, request_id), payload,
                                    dict(JSON_HEADERS, **echo) if echo else JSON_HEADERS)
    if status != 202:
        sys.stderr.write("bootstrap: Runtime API answered %d for %s: %r\n" % (status, request_id, reply[:500]))


def main():
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)  # trigd tags output line by line, as it arrives
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # `python3 /path/bootstrap.py` puts this file's directory first on sys.path; it is no place for user
    # imports. The task root goes in front; PYTHONPATH entries (layers) follow it, as on Lambda.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    sys.path.insert(0, task_root)
    log_handler = logging.StreamHandler(sys.stdout)
    log_handler.setFormatter(LambdaFormatter())
    logging.getLogger().addHandler(log_handler)

    api = RuntimeApi(address)
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        err = error_body(e, "", skip=2)  # skip main() and load_handler()
        log_error(err)
        try:
            api.call("POST", RUNTIME + "/init/error", json.dumps(err).encode(), error_headers(err))
        except (OSError, http.client.HTTPException) as post_error:
            sys.stderr.write("bootstrap: could not report the init error: %s\n" % post_error)
        sys.exit(1)

    try:
        while True:
            status, headers, body = api.call("GET", RUNTIME + "/invocation/next", None, {})
            if status != 200:
                sys.stderr.write("bootstrap: Runtime API answered %d to next: %r; exiting\n" % (status, body[:500]))
                sys.exit(1)
            handle(api, handler, headers, body)
    except (OSError, http.client.HTTPException) as e:  # trigd has gone away
        sys.stderr.write("bootstrap: Runtime API at %s unreachable (%s); exiting\n" % (address, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
