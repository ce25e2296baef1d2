import SwarmCore
import Testing

@testable import JobProtocol

import Foundation

@Suite struct QueueEndpointsTests {
    @Test func shortFormDerivesRunPodTemplatesWithAQuestionMark() throws {
        let endpoints = try QueueEndpoints(queueURL: "http://10.0.0.5:8288/v2/swarmui/", workerID: "w1", apiKey: Secret("k"))
        #expect(endpoints.jobTakeURL(jobInProgress: false) == "http://10.0.0.5:8288/v2/swarmui/job-take/w1?runtime=swarm-worker&job_in_progress=0")
        #expect(
            endpoints.jobTakeBatchURL(batchSize: 3, jobInProgress: true)
                == "http://10.0.0.5:8288/v2/swarmui/job-take-batch/w1?runtime=swarm-worker&batch_size=3&job_in_progress=1"
        )
        #expect(endpoints.jobStopURL == "http://10.0.0.5:8288/v2/swarmui/job-stop/w1?runtime=swarm-worker")
        #expect(endpoints.jobDoneURL(jobID: "j/1") == "http://10.0.0.5:8288/v2/swarmui/job-done/w1/j%2F1?runtime=swarm-worker&isStream=false")
        #expect(endpoints.jobStreamURL(jobID: "j2") == "http://10.0.0.5:8288/v2/swarmui/job-stream/w1/j2?runtime=swarm-worker&isStream=false")
        #expect(endpoints.acceptsUploads)
        #expect(endpoints.jobUploadURL(jobID: "j2") == "http://10.0.0.5:8288/v2/swarmui/job-upload/w1/j2?runtime=swarm-worker")
        #expect(
            endpoints.jobUploadURL(jobID: "j2", complete: true) == "http://10.0.0.5:8288/v2/swarmui/job-upload/w1/j2/complete?runtime=swarm-worker"
        )
    }

    @Test func pingListsJobsCommaSeparatedAndEncoded() throws {
        let endpoints = try QueueEndpoints(queueURL: "http://q/v2/ep", workerID: "w1", apiKey: nil)
        #expect(endpoints.pingURL(jobIDs: []) == "http://q/v2/ep/ping/w1?runtime=swarm-worker&runpod_version=1.12.0")
        #expect(
            endpoints.pingURL(jobIDs: ["a", "b"], extra: [("stage", "READY")])
                == "http://q/v2/ep/ping/w1?runtime=swarm-worker&job_id=a%2Cb&stage=READY&runpod_version=1.12.0"
        )
    }

    @Test func runPodTemplatesAreFilledAsTheSDKFillsThem() throws {
        let endpoints = QueueEndpoints(
            jobTakeTemplate: "https://api.runpod.ai/v2/ep/job-take/$ID?gpu=RTX",
            jobDoneTemplate: "https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=RTX",
            pingTemplate: "https://api.runpod.ai/v2/ep/ping/$RUNPOD_POD_ID?gpu=RTX",
            workerID: "pod9",
            apiKey: nil
        )
        #expect(endpoints.jobTakeURL(jobInProgress: true) == "https://api.runpod.ai/v2/ep/job-take/pod9?gpu=RTX&job_in_progress=1")
        #expect(endpoints.jobDoneURL(jobID: "abc-e2", isStream: true) == "https://api.runpod.ai/v2/ep/job-done/pod9/abc-e2?gpu=RTX&isStream=true")
        #expect(endpoints.jobStopURL == "https://api.runpod.ai/v2/ep/job-stop/pod9?gpu=RTX")
        #expect(!endpoints.acceptsReports, "RunPod's ping is a bare GET")
        #expect(!endpoints.acceptsUploads, "RunPod stores no outputs for its workers")
        #expect(try QueueEndpoints(queueURL: "http://q/v2/ep", workerID: "w", apiKey: nil).acceptsReports, "swarmctl takes a JSON report")
    }

    @Test func malformedQueueURLNamesTheVariable() {
        for url in ["ftp://q/v2/ep", "http://q", "http://q/v2/ep?x=1"] {
            #expect(throws: QueueConfigurationError.self) { try QueueEndpoints(queueURL: url, workerID: "w", apiKey: nil) }
            do {
                _ = try QueueEndpoints(queueURL: url, workerID: "w", apiKey: nil)
            } catch {
                #expect(error.variable == "SWARM_QUEUE_URL")
            }
        }
    }
}
