import ECPProtocol
import Foundation
import Testing

@testable import ECPEngine

@Suite("State table file layout")
struct StateTableFileTests {
    static func table(names: [String]) -> StateTable {
        var machines: [String: StateTable.Entry] = [:]
        for (i, name) in names.enumerated() {
            let uuid = String(format: "6695eb01-f6a4-8304-79aa-%012x", i)
            machines[uuid] = .init(
                name: name, desired: i % 2 == 0 ? "running" : "paused", observed: i % 3 == 0 ? nil : "shutoff",
                updatedAt: "2026-11-25T20:31:07.123Z", desiredFrom: i % 4 == 0 ? nil : "command")
        }
        return StateTable(worker: "host\"1", savedAt: "2026-11-25T20:31:08.000Z", machines: machines)
    }

    @Test("the file is pretty JSON with sorted keys, one field per line, ending in a newline", arguments: [0, 1, 7])
    func layout(_ count: Int) throws {
        let table = Self.table(names: (0..<count).map { "web\($0) \"quoted\" é/x" })
        let text = String(decoding: table.fileBytes(), as: UTF8.self)
        #expect(text.hasPrefix("{\n  \"machines\" : {"), "\(text)")
        #expect(text.hasSuffix("\n  \"version\" : 1,\n  \"worker\" : \"host\\\"1\"\n}\n"), "\(text)")
        #expect(count == 0 || text.contains("é/x"), "slashes and non-ASCII are written as they are: \(text)")
        #expect(try StateTable.parse(Data(table.fileBytes())) == table)
    }

    @Test("names with control characters and separators read back unchanged")
    func hostileNames() throws {
        let table = Self.table(names: ["nul\u{0}x", "tab\tnl\nret\r", "esc\u{1b}[31m", "\u{7f}\u{80}\u{2028}", "日本 🚀"])
        #expect(try StateTable.parse(Data(table.fileBytes())) == table)
    }
}
