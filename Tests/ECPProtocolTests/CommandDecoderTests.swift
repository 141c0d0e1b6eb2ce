import ECPProtocol
import Foundation
import Testing

@Suite("Command decoding and validation")
struct CommandDecoderTests {
    let decoder = CommandDecoder()

    func decode(_ text: String) -> Result<Command, RequestError> {
        decoder.decode(Data(text.utf8))
    }

    @Test("a full start command decodes")
    func fullCommand() throws {
        let c = try decode(#"{"v":1,"id":"7f3c-12","op":"start","machine":"web1","args":{"paused":true},"timeout_ms":30000}"#).get()
        #expect(c == Command(id: "7f3c-12", op: .start, machine: "web1", args: .init(paused: true), timeoutMs: 30000))
    }

    @Test("unknown fields are ignored, at the top and in args")
    func unknownFields() throws {
        let c = try decode(#"{"v":1,"id":"a","op":"shutdown","machine":"m","future":[1,2],"args":{"wait_ms":5,"force":true,"x":{}}}"#).get()
        #expect(c.args == .init(waitMs: 5, force: true))
    }

    @Test("define carries its XML and no machine")
    func define() throws {
        let c = try decode(#"{"v":1,"id":"d1","op":"define","args":{"xml":"<domain/>"}}"#).get()
        #expect(c.op == .define)
        #expect(c.args.xml == "<domain/>")
        #expect(c.machine == nil)
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        let input: String
        let reason: RequestErrorReason
        let field: String?
        let id: String?
        var testDescription: String { "\(reason.rawValue) \(field ?? "-"): \(input.prefix(40))" }
    }

    static let bad: [Bad] = [
        Bad(input: "", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "{", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "{\"v\":1,", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "not json", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "\u{1}\u{2}\u{ff}", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":1,"id":"a","op":"ping",}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":1,"id":"a","op":"ping","x":[1,]}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "{\"v\":1,\"id\":\"a\tb\",\"op\":\"ping\"}", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: "{\"v\":1,\"id\":\"a\u{0}b\",\"op\":\"ping\"}", reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":01,"id":"a","op":"ping"}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":1,"id":"a","op":"ping"} {}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{'v':1}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":1,"id":"a\x","op":"ping"}"#, reason: .malformedJSON, field: nil, id: nil),
        Bad(input: #"{"v":1,"id":"a","op":"ping","deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#, reason: .tooLarge, field: nil, id: nil),
        Bad(input: "[]", reason: .notAnObject, field: nil, id: nil),
        Bad(input: "42", reason: .notAnObject, field: nil, id: nil),
        Bad(input: "\"start\"", reason: .notAnObject, field: nil, id: nil),
        Bad(input: "null", reason: .notAnObject, field: nil, id: nil),
        Bad(input: #"{"v":1,"op":"ping"}"#, reason: .missingField, field: "id", id: nil),
        Bad(input: #"{"v":1,"id":7,"op":"ping"}"#, reason: .invalidField, field: "id", id: nil),
        Bad(input: #"{"v":1,"id":"","op":"ping"}"#, reason: .invalidField, field: "id", id: nil),
        Bad(input: #"{"v":1,"id":"a b","op":"ping"}"#, reason: .invalidField, field: "id", id: nil),
        Bad(input: #"{"v":1,"id":"a/b","op":"ping"}"#, reason: .invalidField, field: "id", id: nil),
        Bad(input: "{\"v\":1,\"id\":\"\(String(repeating: "x", count: 129))\",\"op\":\"ping\"}", reason: .invalidField, field: "id", id: nil),
        Bad(input: #"{"id":"a","op":"ping"}"#, reason: .missingField, field: "v", id: "a"),
        Bad(input: #"{"v":2,"id":"a","op":"ping"}"#, reason: .unsupportedVersion, field: "v", id: "a"),
        Bad(input: #"{"v":"1","id":"a","op":"ping"}"#, reason: .invalidField, field: "v", id: "a"),
        Bad(input: #"{"v":1,"id":"a"}"#, reason: .missingField, field: "op", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"explode"}"#, reason: .unknownOp, field: "op", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":["start"]}"#, reason: .invalidField, field: "op", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start"}"#, reason: .missingField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":""}"#, reason: .invalidField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":5}"#, reason: .invalidField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":null}"#, reason: .invalidField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":"x\ny"}"#, reason: .invalidField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":" web"}"#, reason: .invalidField, field: "machine", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":"web","args":[]}"#, reason: .invalidField, field: "args", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"start","machine":"web","args":{"paused":"yes"}}"#, reason: .invalidField, field: "args.paused", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"shutdown","machine":"web","args":{"wait_ms":1.5}}"#, reason: .invalidField, field: "args.wait_ms", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"shutdown","machine":"web","args":{"wait_ms":-1}}"#, reason: .invalidField, field: "args.wait_ms", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"shutdown","machine":"web","args":{"force":true}}"#, reason: .invalidField, field: "args.force", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"define"}"#, reason: .missingField, field: "args.xml", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"define","args":{"xml":3}}"#, reason: .invalidField, field: "args.xml", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"define","args":{"xml":""}}"#, reason: .invalidField, field: "args.xml", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"ping","timeout_ms":0}"#, reason: .invalidField, field: "timeout_ms", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"ping","timeout_ms":"5"}"#, reason: .invalidField, field: "timeout_ms", id: "a"),
        Bad(input: #"{"v":1,"id":"a","op":"ping","timeout_ms":99999999999}"#, reason: .invalidField, field: "timeout_ms", id: "a"),
    ]

    @Test("bad input is refused with a specific reason", arguments: bad)
    func refused(_ bad: Bad) throws {
        let result = decode(bad.input)
        guard case .failure(let error) = result else {
            Issue.record("accepted: \(bad.input)")
            return
        }
        #expect(error.reason == bad.reason, "\(error)")
        #expect(error.field == bad.field, "\(error)")
        #expect(error.id == bad.id)
        #expect(!error.detail.isEmpty)
        #expect(!error.detail.contains("\n"), "details stay one line")
    }

    @Test("invalid UTF-8 inside a string is malformed JSON", arguments: [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]] as [[UInt8]])
    func invalidUTF8(_ bytes: [UInt8]) {
        var data = Data(#"{"v":1,"id":"a","op":"ping","x":""#.utf8)
        data.append(contentsOf: bytes)
        data.append(contentsOf: Array(#""}"#.utf8))
        guard case .failure(let e) = decoder.decode(data) else { Issue.record("accepted"); return }
        #expect(e.reason == .malformedJSON, "\(e)")
        #expect(e.detail.contains("UTF-8"))
    }

    @Test("valid JSON of every kind passes the syntax check")
    func validSyntax() throws {
        let c = try decode(#" { "v" : 1 , "id" : "a" , "op" : "ping" , "x" : [ -0.5e+3, 0, 1E2, true, false, null, "\u00e9\n", {} ] , "é" : "ü" } "#).get()
        #expect(c.op == .ping)
    }

    @Test("a document past the size limit is too_large before it is parsed")
    func tooLarge() {
        let small = CommandDecoder(limits: .init(maxDocumentBytes: 64))
        let result = small.decode(Data(repeating: UInt8(ascii: " "), count: 65))
        guard case .failure(let e) = result else { Issue.record("accepted"); return }
        #expect(e.reason == .tooLarge)
    }

    @Test("XML past its limit is too_large and names args.xml")
    func xmlTooLarge() {
        let d = CommandDecoder(limits: .init(maxXMLBytes: 10))
        let result = d.decode(Data(#"{"v":1,"id":"a","op":"define","args":{"xml":"<domain>....</domain>"}}"#.utf8))
        guard case .failure(let e) = result else { Issue.record("accepted"); return }
        #expect(e.reason == .tooLarge)
        #expect(e.field == "args.xml")
    }

    /// Entity expansion at two levels ("billion laughs" in small): 10 × 10 references.
    static let laughs = """
        <?xml version="1.0"?>
        <!DOCTYPE domain [
          <!ENTITY lol "lol">
          <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
          <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
        ]>
        <domain type='test'><name>laughs</name><description>&lol2;</description><memory>65536</memory></domain>
        """

    @Test("a document type declaration in define's XML is refused, in any case and anywhere", arguments: [
        laughs,
        "<!doctype domain><domain type='test'><name>a</name><memory>65536</memory></domain>",
        "<domain type='test'><name>a</name><memory>65536</memory></domain><!DocType x>",
        "<<!DOCTYPE x>",
    ])
    func doctypeRefused(_ xml: String) throws {
        let body = try JSONSerialization.data(withJSONObject: ["v": 1, "id": "dt", "op": "define", "args": ["xml": xml]])
        guard case .failure(let e) = decoder.decode(body) else { Issue.record("accepted"); return }
        #expect(e.reason == .invalidField)
        #expect(e.field == "args.xml")
        #expect(e.id == "dt")
        #expect(e.detail.contains("document type declaration") && e.detail.contains("never needs one"), "\(e.detail)")
    }

    @Test("XML that only looks like a declaration in part is accepted", arguments: [
        "<domain><description>&lt;!DOCTYPE is refused</description></domain>",
        "<domain><!-- DOCTYPE --><name>a</name></domain>",
        "<domain><![CDATA[x]]><name>a!DOCTYPE</name></domain>",
        "<! DOCTYPE><domain/>",
    ])
    func doctypeLookalikes(_ xml: String) throws {
        let body = try JSONSerialization.data(withJSONObject: ["v": 1, "id": "dt", "op": "define", "args": ["xml": xml]])
        #expect(try decoder.decode(body).get().args.xml == xml)
    }

    @Test("quoting keeps control characters out of text")
    func quoting() {
        #expect(CommandDecoder.quote("a\nb\u{1b}[31m") == #""a\nb\u001b[31m""#)
    }

    @Test("every op without a machine decodes with only v, id and op", arguments: Op.allCases.filter { !$0.needsMachine && $0 != .define })
    func machineless(_ op: Op) throws {
        let c = try decode(#"{"v":1,"id":"x","op":"\#(op.rawValue)"}"#).get()
        #expect(c.op == op)
    }
}
