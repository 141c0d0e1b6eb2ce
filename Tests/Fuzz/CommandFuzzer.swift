// A libFuzzer target for the command decoder and validator (Sources/ECPProtocol).
//
// Not a SwiftPM target: scripts/fuzz.sh compiles it together with the module's sources
// (`-module-name ECPProtocol`) with `-sanitize=fuzzer,address`. The invariants are the module's
// own (DecoderInvariants), which Tests/ECPProtocolTests/FuzzCorpusTests.swift also checks when it
// replays the corpus in the normal test run.

import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func commandFuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = size > 0 && bytes != nil ? Data(bytes: bytes!, count: size) : Data()
    for decoder in DecoderInvariants.decoders {
        if let violation = DecoderInvariants.violation(data, decoder: decoder) {
            // One line libFuzzer's log keeps, and that scripts/fuzz.sh uses to tell findings apart.
            FileHandle.standardError.write(Data("INVARIANT VIOLATED: \(violation)\n".utf8))
            fatalError("INVARIANT VIOLATED: \(violation)")
        }
    }
    return 0
}
