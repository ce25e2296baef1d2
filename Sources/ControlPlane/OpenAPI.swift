import Hummingbird
import NIOCore

extension Response {
    static func openAPIDocument() -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: openAPIJSON)))
    }
}

/// The OpenAPI 3.1 description of every route, written by hand beside the routes it describes (a generator would cost
/// a build plugin for a document this size). Keep it in step with ClientRoutes and WorkerRoutes.
let openAPIJSON = #"""
    {
      "openapi": "3.1.0",
      "info": {
        "title": "swarmctl serve",
        "version": "1.0.0",
        "description": "RunPod-compatible queue for SwarmUI workers. Client routes need a client key, worker routes a worker key, sent as 'Authorization: Bearer <key>' or the raw key. Every error is JSON: {\"error\": \"...\", \"field\": \"...\"}. Webhooks are POSTed on a final state with X-Swarm-Signature: sha256=<hex HMAC-SHA256 of the body> when SWARM_WEBHOOK_SECRET is set."
      },
      "components": {
        "securitySchemes": {
          "clientKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
          "workerKey": {"type": "apiKey", "in": "header", "name": "Authorization"}
        },
        "parameters": {
          "endpoint": {"name": "endpoint", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Endpoint name; 'swarmui' always exists."},
          "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
          "worker": {"name": "worker", "in": "path", "required": true, "schema": {"type": "string"}},
          "job": {"name": "job", "in": "path", "required": true, "schema": {"type": "string"}},
          "wait": {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 300000}, "description": "Milliseconds to hold the request for a final state."}
        },
        "schemas": {
          "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "field": {"type": "string"}}},
          "Status": {"type": "string", "enum": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]},
          "Policy": {"type": "object", "properties": {
            "executionTimeout": {"type": "integer", "minimum": 5000, "maximum": 604800000},
            "ttl": {"type": "integer", "minimum": 10000, "maximum": 604800000},
            "lowPriority": {"type": "boolean"}}},
          "SubmitRequest": {"type": "object", "required": ["input"], "properties": {
            "input": {"description": "Passed to the worker unchanged."},
            "webhook": {"type": ["string", "null"], "format": "uri"},
            "policy": {"$ref": "#/components/schemas/Policy"},
            "s3Config": {"type": "object"}}},
          "JobBrief": {"type": "object", "required": ["id", "status"], "properties": {"id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"}}},
          "JobStatus": {"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
            "delayTime": {"type": "integer", "description": "Queue wait, ms."},
            "executionTime": {"type": "integer", "description": "Run time, ms."},
            "output": {}, "error": {"type": "string"}, "workerId": {"type": "string"}, "retries": {"type": "integer"},
            "provider": {"type": "string", "enum": ["vastai", "fal"], "description": "Who ran the job; absent while it waits."},
            "falRequestId": {"type": "string"}, "falCostUsd": {"type": "number", "description": "What fal.ai charged, USD."},
            "spillOver": {"type": "string", "description": "Why a queued auto job waits for the fleet although it would spill over to fal.ai: the day's budget is spent. Absent otherwise."},
            "webhookDelivered": {"type": "boolean"},
            "webhookAttempts": {"type": "array", "items": {"type": "object", "properties": {"at": {"type": "string"}, "status": {"type": "integer"}, "error": {"type": "string"}}}}}},
          "WorkerJob": {"type": "object", "required": ["id", "input"], "properties": {"id": {"type": "string"}, "input": {}, "webhook": {"type": "string"}, "s3Config": {"type": "object"}}},
          "JobDone": {"type": "object", "properties": {"output": {}, "error": {}, "status": {"type": "string", "description": "IN_PROGRESS marks a progress update."}, "stopPod": {"type": "boolean"}, "retryable": {"type": "boolean"}}}
        },
        "responses": {
          "Error": {"description": "What is wrong, and for bad input the field.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "Brief": {"description": "The job's id and status.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobBrief"}}}},
          "Status": {"description": "The job's status object.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}},
          "Ok": {"description": "Accepted.", "content": {"application/json": {"schema": {"type": "object"}}}},
          "NoContent": {"description": "Nothing within the long poll."}
        }
      },
      "paths": {
        "/v2/{endpoint}/run": {"post": {"summary": "Submit a job (body up to 10 MB).", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}],
          "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}}}},
          "responses": {"200": {"$ref": "#/components/responses/Brief"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/runsync": {"post": {"summary": "Submit a job and hold the request until it ends or `wait` ms pass (1000-300000, default 90000).", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 1000, "maximum": 300000}}],
          "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}}}},
          "responses": {"200": {"$ref": "#/components/responses/Status"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/run-batch": {"post": {"summary": "Submit 1 to 10,000 jobs atomically; ids come back in order.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}],
          "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {"$ref": "#/components/schemas/SubmitRequest"}}}}}}},
          "responses": {"200": {"description": "The new ids, in order.", "content": {"application/json": {"schema": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/status/{id}": {"get": {"summary": "A job's status and result.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/id"}, {"$ref": "#/components/parameters/wait"}],
          "responses": {"200": {"$ref": "#/components/responses/Status"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/stream/{id}": {"get": {"summary": "Stream chunks not yet read, each once.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/id"}],
          "responses": {"200": {"description": "Chunks.", "content": {"application/json": {"schema": {"type": "object", "required": ["status", "stream"], "properties": {"id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"}, "stream": {"type": "array", "items": {"type": "object", "properties": {"output": {}}}}}}}}}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/cancel/{id}": {"post": {"summary": "Cancel a queued or running job.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/id"}],
          "responses": {"200": {"$ref": "#/components/responses/Brief"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/retry/{id}": {"post": {"summary": "Requeue a FAILED or TIMED_OUT job under the same id.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/id"}],
          "responses": {"200": {"$ref": "#/components/responses/Brief"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/purge-queue": {"post": {"summary": "Remove the endpoint's queued jobs.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}],
          "responses": {"200": {"description": "How many.", "content": {"application/json": {"schema": {"type": "object", "properties": {"removed": {"type": "integer"}, "status": {"type": "string"}}}}}}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/health": {"get": {"summary": "Job counts by state and live workers.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}],
          "responses": {"200": {"description": "Counts.", "content": {"application/json": {"schema": {"type": "object", "properties": {"jobs": {"type": "object", "additionalProperties": {"type": "integer"}}, "workers": {"type": "object", "additionalProperties": {"type": "integer"}}}}}}}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/jobs": {"get": {"summary": "List jobs, newest first.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"},
            {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "nextCursor of the previous page."}],
          "responses": {"200": {"description": "A page.", "content": {"application/json": {"schema": {"type": "object", "properties": {"jobs": {"type": "array", "items": {"type": "object"}}, "nextCursor": {"type": ["string", "null"]}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/costs": {"get": {"summary": "Spend by day or by job, against fal.ai's list price (docs/costs.md). CSV with Accept: text/csv or format=csv.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"},
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "First UTC day, YYYY-MM-DD; default 6 days before to."},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "Last UTC day, YYYY-MM-DD; default today."},
            {"name": "group", "in": "query", "schema": {"type": "string", "enum": ["day", "job"], "default": "day"}},
            {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}}],
          "responses": {"200": {"description": "The CostReport (days or jobs, totals).", "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-take/{worker}": {"get": {"summary": "Lease one job; long poll up to 30 s, then 204.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"name": "job_in_progress", "in": "query", "schema": {"type": "integer"}}],
          "responses": {"200": {"description": "A job.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WorkerJob"}}}}, "204": {"$ref": "#/components/responses/NoContent"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-take-batch/{worker}": {"get": {"summary": "Lease up to batch_size jobs; long poll up to 30 s, then 204.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"name": "batch_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
          "responses": {"200": {"description": "Jobs.", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/WorkerJob"}}}}}, "204": {"$ref": "#/components/responses/NoContent"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-done/{worker}/{job}": {"post": {"summary": "A result, an error, or a progress update (status IN_PROGRESS); JSON whatever the Content-Type; the first final result wins.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"$ref": "#/components/parameters/job"}, {"name": "isStream", "in": "query", "schema": {"type": "string"}}],
          "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobDone"}}, "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/JobDone"}}}},
          "responses": {"200": {"$ref": "#/components/responses/Ok"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-stream/{worker}/{job}": {"post": {"summary": "One stream chunk, {\"output\": ...}.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"$ref": "#/components/parameters/job"}],
          "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobDone"}}}},
          "responses": {"200": {"$ref": "#/components/responses/Ok"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-upload/{worker}/{job}": {"post": {"summary": "Where to upload one output of a job the worker holds: a presigned PUT, or part URLs above the multipart threshold.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"$ref": "#/components/parameters/job"}],
          "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["name", "size", "content_type"], "properties": {"name": {"type": "string"}, "size": {"type": "integer"}, "content_type": {"type": "string"}}}}}},
          "responses": {"200": {"description": "The upload target: {key, size, method, url, headers} or {key, size, multipart: {upload_id, part_size, parts, complete_url}}.", "content": {"application/json": {"schema": {"type": "object"}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-upload/{worker}/{job}/complete": {"post": {"summary": "Reports an output uploaded ({target, parts}); completes a multipart upload and answers its download link.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"$ref": "#/components/parameters/job"}],
          "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["target", "parts"], "properties": {"target": {"type": "object"}, "parts": {"type": "array", "items": {"type": "object", "properties": {"number": {"type": "integer"}, "etag": {"type": "string"}}}}}}}}},
          "responses": {"200": {"description": "The stored object.", "content": {"application/json": {"schema": {"type": "object", "properties": {"key": {"type": "string"}, "bytes": {"type": "integer"}, "url": {"type": "string"}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/inputs": {"post": {"summary": "Stores an image for a job's init_image (swarmctl submit --image); the body is the image, at most 32 MiB, with Content-Length.", "security": [{"clientKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}],
          "requestBody": {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/gif": {}}},
          "responses": {"200": {"description": "The stored image and the link to pass as init_image.", "content": {"application/json": {"schema": {"type": "object", "properties": {"url": {"type": "string"}, "key": {"type": "string"}, "bytes": {"type": "integer"}, "sha256": {"type": "string"}, "content_type": {"type": "string"}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "411": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "415": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-upload/{worker}/{job}/abort": {"post": {"summary": "Gives up an upload that failed for good ({target}); aborts a multipart upload so that its parts leave the bucket.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"$ref": "#/components/parameters/job"}],
          "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["target"], "properties": {"target": {"type": "object"}}}}}},
          "responses": {"200": {"description": "The upload is gone.", "content": {"application/json": {"schema": {"type": "object", "properties": {"key": {"type": "string"}, "aborted": {"type": "boolean"}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
        "/files/{key}": {
          "put": {"summary": "Local storage: a worker's upload to a signed link (expires, signature); streamed to disk.", "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "expires", "in": "query", "schema": {"type": "integer"}}, {"name": "signature", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"$ref": "#/components/responses/Ok"}, "403": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
          "get": {"summary": "Local storage: an output from a signed link, as a job's result lists it.", "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "expires", "in": "query", "schema": {"type": "integer"}}, {"name": "signature", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The file.", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/ping/{worker}": {
          "get": {"summary": "Heartbeat: extends the leases of the jobs in job_id (comma-separated).", "security": [{"workerKey": []}],
            "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"name": "job_id", "in": "query", "schema": {"type": "string"}}, {"name": "runpod_version", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"$ref": "#/components/responses/Ok"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}},
          "post": {"summary": "Heartbeat with a worker report (stage, downloads, log tail).", "security": [{"workerKey": []}],
            "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}, {"name": "job_id", "in": "query", "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"stage": {"type": "string"}}}}}},
            "responses": {"200": {"$ref": "#/components/responses/Ok"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/v2/{endpoint}/job-stop/{worker}": {"get": {"summary": "Jobs this worker must abandon (cancelled, timed out), each once; long poll up to 30 s, then 204.", "security": [{"workerKey": []}],
          "parameters": [{"$ref": "#/components/parameters/endpoint"}, {"$ref": "#/components/parameters/worker"}],
          "responses": {"200": {"description": "Ids.", "content": {"application/json": {"schema": {"type": "object", "properties": {"jobsToStop": {"type": "array", "items": {"type": "string"}}}}}}}, "204": {"$ref": "#/components/responses/NoContent"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics.", "security": [{"clientKey": []}],
          "responses": {"200": {"description": "Prometheus text.", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": {"$ref": "#/components/responses/Error"}}}},
        "/healthz": {"get": {"summary": "Liveness: the process answers (no key, no store access).", "responses": {"200": {"$ref": "#/components/responses/Ok"}}}},
        "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
      }
    }
    """#
