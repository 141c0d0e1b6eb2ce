import ECPProtocol
import Foundation
import Testing

/// Replays every input of the fuzzing corpus (Tests/Fuzz/corpus: the seeds, and each crashing
/// input scripts/fuzz.sh found) through the decoder, without sanitizers, with the fuzzer's
/// invariants. An input kept there because it broke an invariant fails here until the decoder
/// is fixed.
@Suite("Fuzz corpus replay")
struct FuzzCorpusTests {
    /// Tests/Fuzz, found from this file.
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz", isDirectory: true)
    static let corpusDirectory = fuzzDirectory.appendingPathComponent("corpus", isDirectory: true)

    /// The corpus files' names, sorted.
    static let inputs: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: corpusDirectory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }()

    @Test("the corpus holds the seeds")
    func corpusPresent() {
        #expect(Self.inputs.count >= 30, "corpus at \(Self.corpusDirectory.path): \(Self.inputs)")
    }

    @Test("every corpus input keeps the decoder's invariants", arguments: inputs)
    func replay(_ name: String) throws {
        let data = try Data(contentsOf: Self.corpusDirectory.appendingPathComponent(name))
        for decoder in DecoderInvariants.decoders {
            let violation = DecoderInvariants.violation(data, decoder: decoder)
            #expect(violation == nil, "\(name) with limits \(decoder.limits): \(violation ?? "")")
        }
    }
}
