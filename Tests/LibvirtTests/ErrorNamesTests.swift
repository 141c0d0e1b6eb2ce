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

    /// The name of a value through ``LibvirtError/Code`` or ``LibvirtError/Domain``.
    static func name(of value: Int32, in enumName: String) -> String {
        enumName == "virErrorNumber"
            ? LibvirtError.Code(rawValue: value).name : LibvirtError.Domain(rawValue: value).name
    }

    /// The `known` table of the type for `enumName`, as numbers and C names.
    static func known(_ enumName: String) -> [(value: Int32, name: String)] {
        enumName == "virErrorNumber"
            ? LibvirtError.Code.known.map { ($0.value.rawValue, $0.name) }
            : LibvirtError.Domain.known.map { ($0.value.rawValue, $0.name) }
    }

    @Test(arguments: [("virErrorNumber", ["VIR_ERR_", "VIR_WAR_"]), ("virErrorDomain", ["VIR_FROM_"])])
    func everyValueOfTheInstalledHeaderHasItsName(enumName: String, prefixes: [String]) throws {
        let header = try String(contentsOfFile: Self.headerPath, encoding: .utf8)
        let values = try #require(parseCEnum(named: enumName, in: header))
        // libvirt 9.0.0 has 111 codes and 73 domains; a newer header must only add values.
        #expect(values.count >= (enumName == "virErrorNumber" ? 111 : 73))
        for (name, _) in values {
            #expect(prefixes.contains { name.hasPrefix($0) } && !name.hasSuffix("_LAST"), "\(name)")
        }
        for (name, value) in values {
            #expect(Self.name(of: value, in: enumName) == name, "value \(value)")
        }
        // The table holds nothing the header lacks, and each of its constants has the value of
        // the C name it is paired with.
        let byName = Dictionary(values.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        let table = Self.known(enumName)
        for (value, name) in table {
            #expect(byName[name] == value, "\(name) is \(value) in the table")
        }
        #expect(Set(table.map(\.value)).count == table.count, "no value twice")
    }

    @Test func tablesCoverLibvirt9() {
        #expect(LibvirtError.Code.known.count == 111)
        #expect(LibvirtError.Domain.known.count == 73)
        #expect(LibvirtError.Code.known.map(\.value.rawValue) == Array(0...110))
        #expect(LibvirtError.Domain.known.map(\.value.rawValue) == Array(0...72))
        #expect(LibvirtError.Code.known.first?.name == "VIR_ERR_OK")
        #expect(LibvirtError.Code.known.last?.name == "VIR_ERR_MULTIPLE_DOMAINS")
        #expect(LibvirtError.Domain.known.first?.name == "VIR_FROM_NONE")
        #expect(LibvirtError.Domain.known.last?.name == "VIR_FROM_CH")
    }

    @Test(arguments: [
        (LibvirtError.Code.ok, "VIR_ERR_OK"), (.internalError, "VIR_ERR_INTERNAL_ERROR"),
        (.operationFailed, "VIR_ERR_OPERATION_FAILED"), (.xmlDetail, "VIR_ERR_XML_DETAIL"),
        (.systemError, "VIR_ERR_SYSTEM_ERROR"), (.noDomain, "VIR_ERR_NO_DOMAIN"),
        (.operationInvalid, "VIR_ERR_OPERATION_INVALID"), (.warNoNetwork, "VIR_WAR_NO_NETWORK"),
    ])
    func knownCodes(code: LibvirtError.Code, name: String) {
        #expect(code.name == name)
        #expect(code.description == name)
    }

    @Test func namedCodesHaveLibvirtsNumbers() {
        #expect(LibvirtError.Code.noDomain.rawValue == 42)
        #expect(LibvirtError.Code(rawValue: 42) == .noDomain)
        #expect(LibvirtError.Domain.test.rawValue == 12)
        #expect(LibvirtError.Domain(rawValue: 12) == .test)
    }

    @Test(arguments: [
        (LibvirtError.Domain.none, "VIR_FROM_NONE"), (.rpc, "VIR_FROM_RPC"), (.qemu, "VIR_FROM_QEMU"),
        (.test, "VIR_FROM_TEST"), (.domain, "VIR_FROM_DOMAIN"),
    ])
    func knownDomains(domain: LibvirtError.Domain, name: String) {
        #expect(domain.name == name)
    }

    @Test(arguments: [Int32(-1), Int32.min, Int32.max, Int32(LibvirtError.Code.known.count), 4096])
    func unknownCodesGetSyntheticNames(code: Int32) {
        #expect(LibvirtError.Code(rawValue: code).name == "VIR_ERR_UNKNOWN_\(code)")
    }

    @Test(arguments: [Int32(-1), Int32.min, Int32.max, Int32(LibvirtError.Domain.known.count), 4096])
    func unknownDomainsGetSyntheticNames(domain: Int32) {
        #expect(LibvirtError.Domain(rawValue: domain).name == "VIR_FROM_UNKNOWN_\(domain)")
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
