@testable import ECPProtocol
import Foundation
import Testing

/// The values the command parser builds, not only what it refuses: a parser that accepts a
/// document but reads a wrong value would pass every refusal test.
@Suite("The JSON parser's values")
struct JSONParserValueTests {
    /// The value of member `x` of `{"x":<json>}`, as the command decoder's parser reads it.
    static func value(_ json: String) throws -> JSONValue {
        var found: JSONValue?
        let document = "{\"x\":\(json)}"
        let rest = try Data(document.utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
            try JSONSyntax.parseMembers(buffer, maxDepth: 32) { name, value in
                if name == "x" { found = value }
            }
        }
        #expect(rest == nil, "an object document is handed out member by member")
        return try #require(found, "no member x in \(document)")
    }

    /// Why `{"x":<json>}` is refused.
    static func problem(_ json: String) -> JSONSyntax.Problem? {
        do {
            _ = try Data("{\"x\":\(json)}".utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
                try JSONSyntax.parseMembers(buffer, maxDepth: 32) { _, _ in }
            }
            return nil
        } catch let problem as JSONSyntax.Problem {
            return problem
        } catch {
            Issue.record("not a JSONSyntax.Problem: \(error)")
            return nil
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var json: String
        var value: JSONValue
        var testDescription: String { json }
    }

    static let strings: [Case] = [
        Case(json: #""plain""#, value: "plain"),
        Case(json: #""""#, value: ""),
        Case(json: #""\"""#, value: "\""),
        Case(json: #""\\""#, value: "\\"),
        Case(json: #""\/""#, value: "/"),
        Case(json: #""\b""#, value: "\u{08}"),
        Case(json: #""\f""#, value: "\u{0C}"),
        Case(json: #""\n""#, value: "\n"),
        Case(json: #""\r""#, value: "\r"),
        Case(json: #""\t""#, value: "\t"),
        Case(json: #""\u0000""#, value: "\u{0}"),
        Case(json: #""\u001f""#, value: "\u{1F}"),
        Case(json: #""\u0041\u00e9\u20AC""#, value: "Aé€"),
        Case(json: #""\uFFFF""#, value: "\u{FFFF}"),
        Case(json: #""a\"b\\c\/d\be\ff\ng\rh\ti""#, value: "a\"b\\c/d\u{08}e\u{0C}f\ng\rh\ti"),
        // Escapes at both ends and runs of plain text between them.
        Case(json: #""\ttab and text\n""#, value: "\ttab and text\n"),
        Case(json: #""\ud83d\ude00""#, value: "😀"),
        Case(json: #""x\uD83D\uDE00y""#, value: "x😀y"),
        Case(json: #""\udbff\udfff""#, value: "\u{10FFFF}"),
        Case(json: #""\ud800\udc00""#, value: "\u{10000}"),
        // Raw UTF-8 is kept as it is, next to escapes.
        Case(json: "\"é😀\\n€\"", value: "é😀\n€"),
    ]

    @Test("strings decode every escape to its character", arguments: strings)
    func string(_ c: Case) throws {
        #expect(try Self.value(c.json) == c.value)
    }

    @Test("a lone surrogate escape is refused, not replaced", arguments: [
        (#""\ud83d""#, "a high surrogate without its low half"),
        (#""\ud83dx""#, "a high surrogate without its low half"),
        (#""\ud83d\n""#, "a high surrogate without its low half"),
        (#""\ud83d\u0041""#, "a high surrogate without its low half"),
        (#""\ud83d\ud83d""#, "a high surrogate without its low half"),
        (#""\ude00""#, "a lone low surrogate"),
        (#""\ude00\ud83d""#, "a lone low surrogate"),
    ])
    func loneSurrogate(json: String, why: String) throws {
        let problem = try #require(Self.problem(json), "\(json) was accepted")
        guard case .syntax(let what, _) = problem else {
            Issue.record("\(json): \(problem)")
            return
        }
        #expect(what.contains(why), "\(json): \(what)")
    }

    static let numbers: [Case] = [
        Case(json: "0", value: .int(0)),
        Case(json: "-0", value: .int(0)),
        Case(json: "1", value: .int(1)),
        Case(json: "-1", value: .int(-1)),
        Case(json: "9007199254740992", value: .int(1 << 53)),
        Case(json: "9007199254740993", value: .int((1 << 53) + 1)),
        Case(json: "9223372036854775807", value: .int(Int64.max)),
        Case(json: "-9223372036854775808", value: .int(Int64.min)),
        // Past Int64 an integer is read as the nearest double.
        Case(json: "9223372036854775808", value: .double(9_223_372_036_854_775_808.0)),
        Case(json: "-9223372036854775809", value: .double(-9_223_372_036_854_775_808.0)),
        Case(json: "18446744073709551616", value: .double(18_446_744_073_709_551_616.0)),
        // A fraction or an exponent makes a double, whatever its value.
        Case(json: "0.0", value: .double(0)),
        Case(json: "1.0", value: .double(1)),
        Case(json: "1e3", value: .double(1000)),
        Case(json: "1E+3", value: .double(1000)),
        Case(json: "25e-1", value: .double(2.5)),
        Case(json: "0.5", value: .double(0.5)),
        Case(json: "-0.25", value: .double(-0.25)),
        Case(json: "1e308", value: .double(1e308)),
        Case(json: "-1e-308", value: .double(-1e-308)),
        Case(json: "1.7976931348623157e308", value: .double(.greatestFiniteMagnitude)),
        Case(json: "5e-324", value: .double(.leastNonzeroMagnitude)),
        // Exponents past Double's range: infinity above, zero below.
        Case(json: "1e309", value: .double(.infinity)),
        Case(json: "-1e400", value: .double(-.infinity)),
        Case(json: "1e-400", value: .double(0)),
        Case(json: "1e99999", value: .double(.infinity)),
    ]

    @Test("numbers decode to integers or doubles as written", arguments: numbers)
    func number(_ c: Case) throws {
        #expect(try Self.value(c.json) == c.value)
    }

    @Test("-0.0 keeps its sign; -0 is the integer 0")
    func negativeZero() throws {
        let double = try Self.value("-0.0")
        guard case .double(let d) = double else {
            Issue.record("-0.0 decoded as \(double)")
            return
        }
        #expect(d == 0 && d.sign == .minus)
        #expect(try Self.value("-0") == .int(0))
    }

    @Test("a number that is not JSON is refused", arguments: ["01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "--1"])
    func badNumber(_ json: String) {
        #expect(Self.problem(json) != nil, "\(json) was accepted")
    }

    static let nested: [Case] = [
        Case(json: "[]", value: .array([])),
        Case(json: "{}", value: .object([:])),
        Case(json: "[[]]", value: .array([.array([])])),
        Case(json: " [ 1 , \"a\" , true , false , null , 1.5 ] ", value: [1, "a", true, false, nil, 1.5]),
        Case(json: #"{"a":{"b":{"c":[1,{"d":"e"}]}}}"#, value: ["a": ["b": ["c": [1, ["d": "e"]]]]]),
        Case(json: #"[{"k":[]},{"k":{}}]"#, value: [["k": []], ["k": [:]]]),
        Case(json: "\t{\n\"a\" :\r\n1 }", value: ["a": 1]),
        // Member names are strings like any other: escapes decode in them too.
        Case(json: #"{"\u0061\n":"v","":0}"#, value: ["a\n": "v", "": 0]),
        // The same name in different objects is no repeat.
        Case(json: #"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#, value: ["a": ["a": 1], "b": [["a": 2], ["a": 3]]]),
    ]

    @Test("arrays and objects nest and keep their values", arguments: nested)
    func nesting(_ c: Case) throws {
        #expect(try Self.value(c.json) == c.value)
    }

    @Test("a top-level object's members come in document order")
    func memberOrder() throws {
        var members: [String] = []
        var values: [JSONValue] = []
        let rest = try Data(#"{"b":1,"a":[true],"c":"again"}"#.utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
            try JSONSyntax.parseMembers(buffer, maxDepth: 32) { name, value in
                members.append(name)
                values.append(value)
            }
        }
        #expect(rest == nil)
        #expect(members == ["b", "a", "c"])
        #expect(values == [1, [true], "again"])
    }

    struct Repeat: Sendable, CustomTestStringConvertible {
        var json: String
        var name: String
        var offset: Int
        var testDescription: String { json }
    }

    @Test("a name repeated in one object, at any depth, is refused naming it and where", arguments: [
        Repeat(json: #"{"op":"status","op":"destroy"}"#, name: "op", offset: 15),
        Repeat(json: #"{"a":1,"b":2,"a":3}"#, name: "a", offset: 13),
        Repeat(json: #"{"x":{"a":{"x":1},"a":[2]}}"#, name: "a", offset: 18),
        Repeat(json: #"{"args":{"wait_ms":1,"wait_ms":2}}"#, name: "wait_ms", offset: 21),
        Repeat(json: #"{"x":[[{"k":0,"\u006b":1}]]}"#, name: "k", offset: 14),
        Repeat(json: #"{"":0,"":1}"#, name: "", offset: 6),
    ])
    func repeatedName(_ r: Repeat) {
        var problem: JSONSyntax.Problem?
        do {
            _ = try Data(r.json.utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
                try JSONSyntax.parseMembers(buffer, maxDepth: 32) { _, _ in }
            }
        } catch {
            problem = error as? JSONSyntax.Problem
        }
        #expect(problem == .duplicateMember(r.name, offset: r.offset))
    }

    @Test("a document that is not an object is returned whole", arguments: [
        Case(json: "[1,2]", value: [1, 2]),
        Case(json: #""s""#, value: "s"),
        Case(json: " 7 ", value: 7),
        Case(json: "null", value: nil),
    ])
    func notAnObject(_ c: Case) throws {
        let value = try Data(c.json.utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
            try JSONSyntax.parseMembers(buffer, maxDepth: 32) { _, _ in Issue.record("a member of \(c.json)") }
        }
        #expect(value == c.value)
    }

    @Test("nesting is counted: maxDepth levels pass, one more is too deep")
    func depth() throws {
        func parse(_ depth: Int) throws {
            let json = String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1)
            _ = try Data("{\"x\":\(json)}".utf8).withUnsafeBytes { buffer throws(JSONSyntax.Problem) in
                try JSONSyntax.parseMembers(buffer, maxDepth: 4) { _, _ in }
            }
        }
        #expect(throws: Never.self) { try parse(4) }
        #expect(throws: JSONSyntax.Problem.tooDeep(5)) { try parse(5) }
    }
}

/// The command fields the decoder takes from those values.
@Suite("Command fields decoded from JSON values")
struct CommandFieldValueTests {
    static func decode(_ json: String) -> Result<Command, RequestError> {
        CommandDecoder().decode(Data(json.utf8))
    }

    struct Expectation: Sendable, CustomTestStringConvertible {
        var json: String
        var command: Command
        var testDescription: String { json }
    }

    static let decoded: [Expectation] = [
        // id and op with escapes that name plain characters.
        Expectation(
            json: #"{"v":1,"id":"\u0061\u002d1","op":"\u0070ing"}"#,
            command: Command(id: "a-1", op: .ping)),
        // A machine name with every escape that is not a control character.
        Expectation(
            json: #"{"v":1,"id":"m","op":"status","machine":"we\"b\\1\/x\u00e9\ud83d\ude00"}"#,
            command: Command(id: "m", op: .status, machine: "we\"b\\1/xé😀")),
        // timeout_ms: an integer, or a double without a fraction.
        Expectation(
            json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1}"#,
            command: Command(id: "t", op: .ping, timeoutMs: 1)),
        Expectation(
            json: #"{"v":1,"id":"t","op":"ping","timeout_ms":86400000}"#,
            command: Command(id: "t", op: .ping, timeoutMs: 86_400_000)),
        Expectation(
            json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1e3}"#,
            command: Command(id: "t", op: .ping, timeoutMs: 1000)),
        Expectation(
            json: #"{"v":1,"id":"t","op":"ping","timeout_ms":2500.0}"#,
            command: Command(id: "t", op: .ping, timeoutMs: 2500)),
        Expectation(
            json: #"{"v":1,"id":"t","op":"ping","timeout_ms":null}"#,
            command: Command(id: "t", op: .ping)),
        // v as a double without a fraction is still version 1.
        Expectation(
            json: #"{"v":1.0,"id":"t","op":"ping"}"#,
            command: Command(id: "t", op: .ping)),
        // args.wait_ms at its edges.
        Expectation(
            json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":0}}"#,
            command: Command(id: "s", op: .shutdown, machine: "m", args: .init(waitMs: 0))),
        Expectation(
            json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":86400000,"force":true}}"#,
            command: Command(id: "s", op: .shutdown, machine: "m", args: .init(waitMs: 86_400_000, force: true))),
        Expectation(
            json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":-0}}"#,
            command: Command(id: "s", op: .shutdown, machine: "m", args: .init(waitMs: 0))),
        // args.xml keeps escaped line breaks, tabs and quotes as characters.
        Expectation(
            json: #"{"v":1,"id":"d","op":"define","args":{"xml":"<domain type=\"test\">\n\t<name>n\u00e9</name>\r\n</domain>"}}"#,
            command: Command(id: "d", op: .define, args: .init(xml: "<domain type=\"test\">\n\t<name>né</name>\r\n</domain>"))),
        // Nested unknown members are read through and dropped.
        Expectation(
            json: #"{"x":{"y":[[{"z":"\ud83d\ude00"}]]},"v":1,"id":"n","op":"list","args":{"deep":[[[]]]}}"#,
            command: Command(id: "n", op: .list)),
    ]

    @Test("fields decode to the values written", arguments: decoded)
    func fields(_ e: Expectation) throws {
        #expect(try Self.decode(e.json).get() == e.command)
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var json: String
        var field: String
        var detail: String
        var testDescription: String { json }
    }

    static let refused: [Refusal] = [
        // 2^63 - 1 is an integer, out of range; 2^63 no longer fits an integer at all.
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":9223372036854775807}"#, field: "timeout_ms", detail: "between 1 and 86400000, got 9223372036854775807"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":9223372036854775808}"#, field: "timeout_ms", detail: "between 1 and 86400000, got 9.223372036854776e+18, out of range"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":-9223372036854775809}"#, field: "timeout_ms", detail: "out of range"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":100000000000000000000000000000}"#, field: "timeout_ms", detail: "got 1e+29, out of range"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1e16}"#, field: "timeout_ms", detail: "out of range"),
        Refusal(json: #"{"v":9223372036854775808,"id":"t","op":"ping"}"#, field: "v", detail: "out of range"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":9007199254740992}"#, field: "timeout_ms", detail: "got 9007199254740992"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":0}"#, field: "timeout_ms", detail: "between 1 and 86400000, got 0"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":-0}"#, field: "timeout_ms", detail: "got 0"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":86400001}"#, field: "timeout_ms", detail: "got 86400001"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1.5}"#, field: "timeout_ms", detail: "got a non-integer number"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1e308}"#, field: "timeout_ms", detail: "got 1e+308, out of range"),
        Refusal(json: #"{"v":1,"id":"t","op":"ping","timeout_ms":1.5e308}"#, field: "timeout_ms", detail: "out of range"),
        // wait_ms takes integers only, not doubles without a fraction.
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":1e3}}"#, field: "args.wait_ms", detail: "must be an integer, got a number"),
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":-1}}"#, field: "args.wait_ms", detail: "between 0 and 86400000, got -1"),
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":86400001}}"#, field: "args.wait_ms", detail: "got 86400001"),
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":9223372036854775808}}"#, field: "args.wait_ms", detail: "between 0 and 86400000, got 9.223372036854776e+18, out of range"),
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":-1e300}}"#, field: "args.wait_ms", detail: "out of range"),
        Refusal(json: #"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":1.5}}"#, field: "args.wait_ms", detail: "must be an integer, got a number"),
        // Escapes that decode to characters a field does not take.
        Refusal(json: #"{"v":1,"id":"a\u0020b","op":"ping"}"#, field: "id", detail: #"got "a b""#),
        Refusal(json: #"{"v":1,"id":"m","op":"status","machine":"web\n1"}"#, field: "machine", detail: "control characters"),
        Refusal(json: #"{"v":1,"id":"m","op":"status","machine":"\u0000"}"#, field: "machine", detail: "control characters"),
        Refusal(json: #"{"v":1,"id":"p","op":"\u0050ING"}"#, field: "op", detail: #"unknown op "PING""#),
    ]

    @Test("out-of-range and mistyped values are refused naming the field and the value read", arguments: refused)
    func refusal(_ r: Refusal) throws {
        let error = try #require(Self.decode(r.json).failure, "\(r.json) was accepted")
        #expect(error.field == r.field, "\(error)")
        #expect(error.detail.contains(r.detail), "\(error.detail)")
    }

    @Test("a member named twice, at the top or in args, is refused as malformed JSON naming it", arguments: [
        (#"{"v":1,"id":"dup","op":"status","machine":"a","op":"destroy"}"#, #""op""#),
        (#"{"v":1,"id":"first","op":"start","machine":"a","id":"second"}"#, #""id""#),
        (#"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":1,"wait_ms":2}}"#, #""wait_ms""#),
        (#"{"v":1,"id":"s","op":"shutdown","machine":"m","args":{"wait_ms":1},"args":{"force":false,"wait_ms":3}}"#, #""args""#),
        (#"{"v":1,"id":"t","op":"ping","timeout_ms":"soon","timeout_ms":5}"#, #""timeout_ms""#),
        (#"{"v":1,"id":"t","op":"ping","x":{"y":[{"z":1,"z":1}]}}"#, #""z""#),
    ])
    func repeatedMember(_ json: String, name: String) throws {
        let error = try #require(Self.decode(json).failure, "\(json) was accepted")
        #expect(error.reason == .malformedJSON, "\(error)")
        #expect(error.field == nil && error.id == nil, "\(error)")
        #expect(error.detail.contains("member \(name) twice"), "\(error.detail)")
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
