import Foundation
import Libvirt
import Testing

/// Reads the enumerators of a C `typedef enum { ... } <name>;` from header text: comments and
/// preprocessor lines are dropped, values without `= n` continue from the previous one, and
/// `*_LAST` sentinels are left out.
func parseCEnum(named typeName: String, in header: String) -> [(name: String, value: Int32)]? {
    var text = header
    // Block comments, then line comments, then preprocessor lines.
    while let start = text.range(of: "/*") {
        guard let end = text.range(of: "*/", range: start.upperBound..<text.endIndex) else {
            return nil
        }
        text.replaceSubrange(start.lowerBound..<end.upperBound, with: " ")
    }
    text = text.split(separator: "\n", omittingEmptySubsequences: false)
        .map { line -> Substring in
            if let slashes = line.range(of: "//") { return line[..<slashes.lowerBound] }
            return line
        }
        .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
        .joined(separator: "\n")

    guard let close = text.range(of: "} \(typeName);"),
        let open = text.range(of: "typedef enum {", options: .backwards, range: text.startIndex..<close.lowerBound)
    else {
        return nil
    }
    var result: [(name: String, value: Int32)] = []
    var next: Int32 = 0
    for item in text[open.upperBound..<close.lowerBound].split(separator: ",") {
        let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard let name = parts.first, !name.isEmpty else { continue }
        var value = next
        if parts.count == 2 {
            guard let explicit = Int32(parts[1]) else { return nil }
            value = explicit
        }
        next = value + 1
        if name.hasSuffix("_LAST") { continue }
        result.append((name, value))
    }
    return result
}

@Suite("Error names")
struct ErrorNamesTests {
    static let headerPath = "/usr/include/libvirt/virterror.h"

    @Test(arguments: [("virErrorNumber", ["VIR_ERR_", "VIR_WAR_"]), ("virErrorDomain", ["VIR_FROM_"])])
    func everyValueOfTheInstalledHeaderHasItsName(enumName: String, prefixes: [String]) throws {
        let header = try String(contentsOfFile: Self.headerPath, encoding: .utf8)
        let values = try #require(parseCEnum(named: enumName, in: header))
        let table = enumName == "virErrorNumber" ? ErrorNames.codeNames : ErrorNames.domainNames
        // libvirt 9.0.0 has 111 codes and 73 domains; a newer header must only add values.
        #expect(values.count >= (enumName == "virErrorNumber" ? 111 : 73))
        for (name, _) in values {
            #expect(prefixes.contains { name.hasPrefix($0) } && !name.hasSuffix("_LAST"), "\(name)")
        }
        for (name, value) in values {
            let named = enumName == "virErrorNumber" ? ErrorNames.codeName(value) : ErrorNames.domainName(value)
            #expect(named == name, "value \(value)")
        }
        // The table holds nothing the header lacks.
        let byValue = Dictionary(values.map { ($0.value, $0.name) }, uniquingKeysWith: { first, _ in first })
        for (index, name) in table.enumerated() {
            #expect(byValue[Int32(index)] == name, "table entry \(index)")
        }
    }

    @Test func tablesCoverLibvirt9() {
        #expect(ErrorNames.codeNames.count == 111)
        #expect(ErrorNames.domainNames.count == 73)
        #expect(ErrorNames.codeNames.first == "VIR_ERR_OK")
        #expect(ErrorNames.codeNames.last == "VIR_ERR_MULTIPLE_DOMAINS")
        #expect(ErrorNames.domainNames.first == "VIR_FROM_NONE")
        #expect(ErrorNames.domainNames.last == "VIR_FROM_CH")
    }

    @Test(arguments: [
        (Int32(0), "VIR_ERR_OK"), (1, "VIR_ERR_INTERNAL_ERROR"), (9, "VIR_ERR_OPERATION_FAILED"),
        (35, "VIR_ERR_XML_DETAIL"), (38, "VIR_ERR_SYSTEM_ERROR"), (42, "VIR_ERR_NO_DOMAIN"),
        (55, "VIR_ERR_OPERATION_INVALID"),
    ])
    func knownCodes(code: Int32, name: String) {
        #expect(ErrorNames.codeName(code) == name)
    }

    @Test(arguments: [
        (Int32(0), "VIR_FROM_NONE"), (7, "VIR_FROM_RPC"), (10, "VIR_FROM_QEMU"), (12, "VIR_FROM_TEST"),
        (20, "VIR_FROM_DOMAIN"),
    ])
    func knownDomains(domain: Int32, name: String) {
        #expect(ErrorNames.domainName(domain) == name)
    }

    @Test(arguments: [Int32(-1), Int32.min, Int32.max, Int32(ErrorNames.codeNames.count), 4096])
    func unknownCodesGetSyntheticNames(code: Int32) {
        #expect(ErrorNames.codeName(code) == "VIR_ERR_UNKNOWN_\(code)")
    }

    @Test(arguments: [Int32(-1), Int32.min, Int32.max, Int32(ErrorNames.domainNames.count), 4096])
    func unknownDomainsGetSyntheticNames(domain: Int32) {
        #expect(ErrorNames.domainName(domain) == "VIR_FROM_UNKNOWN_\(domain)")
    }

    @Test func parserHandlesImplicitValuesCommentsAndSentinels() throws {
        let header = """
            typedef enum {
                A_NONE = 0, /* zero, with a comment
                               that mentions A_FAKE = 9 */
                A_ONE,
            # ifdef SOMETHING
                A_FIVE = 5,  // line comment
            # endif
                A_SIX,
            # ifdef VIR_ENUM_SENTINELS
                A_LAST
            # endif
            } other;
            typedef enum {
                B_X = 3,
                B_Y,
            } wanted;
            """
        let other = try #require(parseCEnum(named: "other", in: header))
        #expect(other.map(\.name) == ["A_NONE", "A_ONE", "A_FIVE", "A_SIX"])
        #expect(other.map(\.value) == [0, 1, 5, 6])
        let wanted = try #require(parseCEnum(named: "wanted", in: header))
        #expect(wanted.map(\.name) == ["B_X", "B_Y"])
        #expect(wanted.map(\.value) == [3, 4])
    }
}
