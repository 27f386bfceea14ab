'use strict';
// trigd's runtime client for Node.js Lambda handlers (CommonJS, Node >= 18, no dependencies).
//
// trigd starts this file as `node bootstrap.js` with cwd = the function's code directory and the Lambda
// environment variables set. It loads the handler once, then loops on the Runtime API (2018-06-01):
// GET next -> call the handler -> POST the result or the error.

const fs = require('fs');
const http = require('http');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

const RUNTIME = '/2018-06-01/runtime';
const env = process.env;
const address = env.AWS_LAMBDA_RUNTIME_API || '';
const colon = address.lastIndexOf(':');
const apiHost = address.slice(0, colon).replace(/^\[|\]$/g, ''); // "[::1]:9001" -> "::1"
const apiPort = Number(address.slice(colon + 1));
// maxSockets 1: the protocol is strictly sequential, so one kept-alive connection serves every call.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

let currentRequestId = ''; // shown in log lines; empty during init
let fatalExit = false; // set once an uncaught error has taken over reporting

// console.* -> "<ISO ts>\t<request id>\t<LEVEL>\t<message>". Everything goes to stdout, as in the real
// runtime, so lines keep their order; \n inside a message becomes \r so one call stays one line for trigd.
function patchConsole() {
  const writer = (level) => (...args) => {
    const message = util.format(...args).replace(/\n/g, '\r');
    process.stdout.write(`${new Date().toISOString()}\t${currentRequestId}\t${level}\t${message}\n`);
  };
  console.log = console.info = writer('INFO');
  console.warn = writer('WARN');
  console.error = writer('ERROR');
  console.debug = writer('DEBUG');
  console.trace = writer('TRACE');
}

function isError(value) {
  return util.types.isNativeError(value) || value instanceof Error;
}

// Body for /error and /init/error (the Node client's shape: `trace`, not `stackTrace`).
function errorBody(err) {
  try {
    if (isError(err)) {
      return { errorType: String(err.name), errorMessage: String(err.message), trace: String(err.stack || '').split('\n') };
    }
    return { errorType: typeof err, errorMessage: String(err), trace: [] };
  } catch (_) { // e.g. Object.create(null) has no toString
    return { errorType: 'handled', errorMessage: 'the thrown value could not be described', trace: [] };
  }
}

// The log line the real runtime prints: own enumerable properties (e.g. `code`) included, stack as lines.
function logInvokeError(err, label) {
  const body = errorBody(err);
  let text;
  try {
    text = JSON.stringify(isError(err) ? { errorType: body.errorType, errorMessage: body.errorMessage, ...err, stack: body.trace } : body);
  } catch (_) {
    text = JSON.stringify(body);
  }
  console.error(label, '\t' + text); // util.format joins with a space: "Invoke Error \t{...}"
}

// An Error whose name is a Lambda errorType. With a cause, the trace is the cause's (where the user's
// problem is) rather than ours; a SyntaxError's stack also starts with the offending file and line.
function runtimeError(type, message, cause) {
  const err = new Error(message);
  Object.defineProperty(err, 'name', { value: type, enumerable: false, writable: true, configurable: true });
  const causeStack = cause && typeof cause.stack === 'string' ? cause.stack : '';
  if (causeStack) {
    const head = String(cause);
    err.stack = `${type}: ${message}` + (causeStack.startsWith(head) ? causeStack.slice(head.length) : '\n' + causeStack);
  } else {
    err.stack = `${type}: ${message}\n` + err.stack.split('\n').slice(1).join('\n');
  }
  return err;
}

function callApi(method, urlPath, body, headers, retried) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: apiHost, port: apiPort, method, path: urlPath, agent, headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      // A kept-alive socket the server closed while we were idle fails on reuse: retry once on a fresh one.
      if (req.reusedSocket && !retried) resolve(callApi(method, urlPath, body, headers, true));
      else reject(err);
    });
    req.end(body);
  });
}

function post(urlPath, payload, extraHeaders) {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), ...extraHeaders };
  return callApi('POST', urlPath, payload, headers).then((res) => {
    if (res.status !== 202) process.stderr.write(`bootstrap: Runtime API answered ${res.status} to ${urlPath}: ${res.body.slice(0, 500)}\n`);
  });
}

function postError(urlPath, err, extraHeaders) {
  const body = errorBody(err);
  const headers = { ...extraHeaders };
  if (/^[\x21-\x7e]+$/.test(body.errorType)) headers['Lambda-Runtime-Function-Error-Type'] = body.errorType;
  return post(urlPath, JSON.stringify(body), headers);
}

function die(message) {
  process.stderr.write(`bootstrap: ${message}; exiting\n`);
  process.exit(1);
}

// ESM or CommonJS for a .js file: the nearest package.json's "type" decides, as in Node itself.
function isEsmJs(file) {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try { return JSON.parse(fs.readFileSync(pkg, 'utf8')).type === 'module'; } catch (_) { return false; }
    }
    if (path.dirname(dir) === dir) return false;
  }
}

async function loadFile(file) {
  if (file.endsWith('.mjs') || (file.endsWith('.js') && isEsmJs(file))) return import(pathToFileURL(file).href);
  try {
    return require(file);
  } catch (err) {
    // ESM syntax in a file Node took for CommonJS (older Node without require(esm)): load it as ESM.
    if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
    throw err;
  }
}

async function loadHandler(taskRoot, spec) {
  // "dir/file.a.b": the module is everything up to the first dot after the last slash; the rest is a
  // property path into its exports.
  const dot = spec.indexOf('.', spec.lastIndexOf('/') + 1);
  if (dot <= 0 || dot === spec.length - 1) throw runtimeError('Runtime.MalformedHandlerName', `Bad handler ${spec}`);
  const modulePath = spec.slice(0, dot);
  const base = path.resolve(taskRoot, modulePath);
  let exportsObject;
  try {
    const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
    if (file) {
      exportsObject = await loadFile(file);
    } else {
      // Not a file in the task root: a directory with an index, or a package from node_modules/NODE_PATH.
      const req = require('module').createRequire(path.join(taskRoot, 'bootstrap-resolve.js'));
      let resolved;
      try { resolved = req.resolve(base); } catch (_) {
        try { resolved = req.resolve(modulePath); } catch (_) { resolved = null; }
      }
      if (!resolved) throw runtimeError('Runtime.ImportModuleError', `Error: Cannot find module '${modulePath}'`);
      exportsObject = await loadFile(resolved);
    }
  } catch (err) {
    if (err instanceof SyntaxError) throw runtimeError('Runtime.UserCodeSyntaxError', String(err), err);
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw runtimeError('Runtime.ImportModuleError', String(err), err);
    }
    throw err; // module-level code threw: report it under its own name
  }
  let fn = exportsObject;
  for (const key of spec.slice(dot + 1).split('.')) fn = fn == null ? undefined : fn[key];
  if (fn === undefined) throw runtimeError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  if (typeof fn !== 'function') throw runtimeError('Runtime.HandlerNotFound', `${spec} is not a function`);
  return fn;
}

// Called when the event loop has nothing left to do (see runHandler).
let onDrain = null;
process.on('beforeExit', () => {
  const f = onDrain;
  onDrain = null;
  if (f) f();
});

// Runs one invocation; resolves to {ok, value} or {ok: false, error}. The first completion wins: promise
// settlement, callback, or legacy context.done/succeed/fail. A callback result with
// callbackWaitsForEmptyEventLoop = true is held until the event loop drains, detected with Node's
// 'beforeExit' event (emitted when no handle or timer is left). That is the real runtime's behaviour, not
// just an approximation: a pending timer or an open socket delays the answer (up to the timeout), and a
// handler that finishes without ever reporting gets `null`. Our own idle keep-alive socket is unref'd by
// the http agent, so it does not count.
function runHandler(handler, event, context) {
  return new Promise((resolve) => {
    let claimed = false;
    const finish = (outcome) => { onDrain = null; resolve(outcome); };
    const claim = (outcome, waitForDrain) => {
      if (claimed) {
        console.warn('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
        return;
      }
      claimed = true;
      if (waitForDrain) onDrain = () => finish(outcome);
      else finish(outcome);
    };
    const outcomeOf = (err, value) => (err == null ? { ok: true, value } : { ok: false, error: err });
    const callback = (err, value) => claim(outcomeOf(err, value), context.callbackWaitsForEmptyEventLoop);
    context.done = (err, value) => claim(outcomeOf(err, value), false);
    context.succeed = (value) => context.done(null, value);
    context.fail = (err) => context.done(err == null ? 'handled' : err);
    onDrain = () => claim({ ok: true, value: null }, false);
    try {
      const result = handler(event, context, callback);
      if (result && typeof result.then === 'function') {
        result.then((value) => claim({ ok: true, value }, false), (error) => claim({ ok: false, error }, false));
      }
    } catch (error) {
      claim({ ok: false, error }, false);
    }
  });
}

function parseJsonHeader(value, what) {
  if (value === undefined) return undefined;
  try { return JSON.parse(value); } catch (err) {
    throw runtimeError('Runtime.LambdaContextUnmarshalError', `Unable to parse ${what} JSON: ${err.message}`);
  }
}

async function invoke(handler, res) {
  const h = res.headers;
  const requestId = h['lambda-runtime-aws-request-id'] || '';
  currentRequestId = requestId;
  if (h['lambda-runtime-trace-id']) env._X_AMZN_TRACE_ID = h['lambda-runtime-trace-id'];
  else delete env._X_AMZN_TRACE_ID;
  const echo = h['lambda-runtime-invocation-id'] ? { 'Lambda-Runtime-Invocation-Id': h['lambda-runtime-invocation-id'] } : {};
  const base = `${RUNTIME}/invocation/${requestId}`;
  let outcome;
  try {
    const deadline = Number(h['lambda-runtime-deadline-ms']) || 0;
    const context = {
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: requestId,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      identity: parseJsonHeader(h['lambda-runtime-cognito-identity'], 'Cognito Identity'),
      clientContext: parseJsonHeader(h['lambda-runtime-client-context'], 'Client Context'),
      tenantId: h['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: () => deadline - Date.now(), // may go negative, like the real one
      callbackWaitsForEmptyEventLoop: true,
    };
    let event;
    try { event = res.body === '' ? {} : JSON.parse(res.body); } catch (err) {
      throw runtimeError('Runtime.UnmarshalError', `Unable to unmarshal input: ${err.message}`);
    }
    outcome = await runHandler(handler, event, context);
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (fatalExit) return new Promise(() => {}); // an uncaught error is reporting this invocation
  if (outcome.ok) {
    let payload;
    try {
      payload = JSON.stringify(outcome.value);
    } catch (err) {
      outcome = { ok: false, error: runtimeError('Runtime.MarshalError', `Unable to marshal response: ${err.message}`) };
    }
    if (outcome.ok) return post(`${base}/response`, payload === undefined ? 'null' : payload, echo);
  }
  logInvokeError(outcome.error, 'Invoke Error');
  return postError(`${base}/error`, outcome.error, echo);
}

// An exception nobody caught (say, thrown from a timer) or a rejection nobody handled leaves the
// environment in an unknown state: report it against the invocation in flight (or init), then exit, as
// the real runtime does; trigd starts a fresh environment.
let phase = 'init'; // 'init' | 'idle' | 'invoke'
function fatal(error, label) {
  if (fatalExit) return;
  fatalExit = true;
  logInvokeError(error, label);
  const url = phase === 'init' ? `${RUNTIME}/init/error` : phase === 'invoke' ? `${RUNTIME}/invocation/${currentRequestId}/error` : null;
  const done = () => process.exit(phase === 'init' ? 1 : 129);
  if (url) postError(url, error, {}).then(done, done);
  else done();
}
process.on('uncaughtException', (err) => fatal(err, 'Uncaught Exception'));
process.on('unhandledRejection', (reason) => {
  const err = runtimeError('Runtime.UnhandledPromiseRejection', isError(reason) ? `${reason.name}: ${reason.message}` : String(reason), reason);
  fatal(err, 'Unhandled Promise Rejection');
});

async function main() {
  if (!address || colon < 0 || !apiPort) die(`AWS_LAMBDA_RUNTIME_API is missing or not host:port ("${address}")`);
  patchConsole();
  const taskRoot = env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(taskRoot, env._HANDLER || '');
  } catch (err) {
    fatalExit = true;
    logInvokeError(err, 'Init Error');
    await postError(`${RUNTIME}/init/error`, err, {}).catch((e) => process.stderr.write(`bootstrap: could not report the init error: ${e.message}\n`));
    process.exit(1);
  }
  for (;;) {
    phase = 'idle';
    let res;
    try {
      res = await callApi('GET', `${RUNTIME}/invocation/next`, undefined, {});
    } catch (err) {
      die(`Runtime API at ${address} unreachable (${err.message})`);
    }
    if (res.status !== 200) die(`Runtime API answered ${res.status} to next: ${res.body.slice(0, 500)}`);
    phase = 'invoke';
    await invoke(handler, res);
  }
}

main().catch((err) => die(`Runtime API at ${address} failed (${err && err.message})`));
