import Testing

@testable import Worker

import Foundation

/// The start of a GGUF v3 file: magic, version, tensor count, then `metadata` key/value pairs (strings and one
/// u32 and one array before the architecture, as converters write them), then `filler` bytes standing for tensors.
func ggufBytes(architecture: String?, filler: [UInt8] = []) -> [UInt8] {
    func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    func u64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    func string(_ text: String) -> [UInt8] { u64(UInt64(text.utf8.count)) + Array(text.utf8) }
    var pairs: [[UInt8]] = [
        string("general.quantization_version") + u32(4) + u32(2),
        string("comfy.gguf.orig_shape.x") + u32(9) + u32(5) + u64(2) + u32(16) + u32(32),
        string("general.file_type") + u32(4) + u32(15),
    ]
    if let architecture { pairs.append(string("general.architecture") + u32(8) + string(architecture)) }
    return Array("GGUF".utf8) + u32(3) + u64(1) + u64(UInt64(pairs.count)) + pairs.flatMap { $0 } + filler
}

@Suite struct GGUFHeaderTests {
    @Test func readsTheArchitecturePastOtherKeys() throws {
        #expect(try GGUFHeader.parse(ggufBytes(architecture: "wan")).architecture == "wan")
        #expect(try GGUFHeader.parse(ggufBytes(architecture: nil)).architecture == nil)
    }

    @Test func refusesWhatComfyUIGGUFWillNotLoad() throws {
        let wan = "wan-2_2-image2video-14b"
        #expect(try GGUFHeader.parse(ggufBytes(architecture: "wan")).refusal(forSwarmUIArchitecture: wan) == nil)
        #expect(try GGUFHeader.parse(ggufBytes(architecture: nil)).refusal(forSwarmUIArchitecture: wan) == nil, "no key: detected from tensors")
        #expect(try GGUFHeader.parse(ggufBytes(architecture: "pig")).refusal(forSwarmUIArchitecture: wan) == nil)
        let llama = try GGUFHeader.parse(ggufBytes(architecture: "llama")).refusal(forSwarmUIArchitecture: wan)
        #expect(llama?.contains("'llama'") == true)
        let flux = try GGUFHeader.parse(ggufBytes(architecture: "flux")).refusal(forSwarmUIArchitecture: wan)
        #expect(flux?.contains("not 'wan'") == true, "a loadable file of another model is still the wrong file")
        #expect(try GGUFHeader.parse(ggufBytes(architecture: "flux")).refusal(forSwarmUIArchitecture: nil) == nil)
    }

    @Test func rejectsWhatIsNotAGGUFHeader() {
        #expect(throws: GGUFHeader.ParseError.notGGUF) { try GGUFHeader.parse(Array("<html>403 Forbidden</html>".utf8)) }
        #expect(throws: GGUFHeader.ParseError.truncated) { try GGUFHeader.parse(Array(ggufBytes(architecture: "wan").prefix(40))) }
        var v1 = ggufBytes(architecture: "wan")
        v1[4] = 1
        #expect(throws: GGUFHeader.ParseError.unsupportedVersion(1)) { try GGUFHeader.parse(v1) }
    }

    @Test func aDownloadedGGUFOfTheWrongArchitectureIsRefusedAndNamed() async throws {
        let folder = try ModelsFolder()
        let wrong = ggufBytes(architecture: "llama", filler: testBytes(count: 4096, seed: 5))
        try await TestFileServers.withServers(files: ["llm.gguf": wrong]) { servers in
            let entries = [entry("llm.gguf", url: servers.a + "/files/llm.gguf", bytes: wrong, architecture: "wan-2_2-image2video-14b")]
            let error = await #expect(throws: ModelProvisioningError.self) { try await provision(entries, into: folder) }
            guard case .unloadableGGUF(let model, _, let reason)? = error else {
                Issue.record("expected unloadableGGUF, got \(String(describing: error))")
                return
            }
            #expect(model == "llm.gguf")
            #expect(reason.contains("'llama'"))
            #expect(error?.description.contains("models.json") == true, "the error says what to change")
            // Already on disk next time: refused again rather than passed as present.
            await #expect(throws: ModelProvisioningError.self) { try await provision(entries, into: folder) }
        }
    }
}
