import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The people who may use the console (`--auth FILE`): one `name:token` a line.
///
/// Blank lines and lines starting with `#` are skipped. A name is 1 to 64 characters of
/// `[A-Za-z0-9._@-]`; a token at least 16 characters without white space (`openssl rand -hex
/// 24` makes a good one). The file holds secrets: the console refuses one that others than its
/// owner can read or write, as the worker refuses such a key file.
public struct TokenFile: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var token: [UInt8]
    }

    public let entries: [Entry]

    /// The shortest token accepted.
    public static let minimumTokenLength = 16

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Reads and checks `path`.
    public static func read(path: String) throws(ConsoleStartupError) -> TokenFile {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConsoleStartupError("--auth: cannot read \(WorkerSpec.quote(path)): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw ConsoleStartupError(
                "--auth: \(WorkerSpec.quote(path)) is readable or writable by others than its owner (mode \(String(info.st_mode & 0o777, radix: 8))); it holds secrets: chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConsoleStartupError("--auth: cannot read \(WorkerSpec.quote(path)) as UTF-8 text")
        }
        return try parse(text, origin: path)
    }

    /// Parses the file's text; `origin` names it in errors.
    public static func parse(_ text: String, origin: String) throws(ConsoleStartupError) -> TokenFile {
        var entries: [Entry] = []
        var names = Set<String>()
        var tokens = Set<[UInt8]>()
        // "\r\n" is one Character: split on both.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, rawLine) in lines.enumerated() {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let at = "--auth: \(WorkerSpec.quote(origin)) line \(index + 1)"
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConsoleStartupError("\(at): expected NAME:TOKEN")
            }
            let name = String(trimmed[..<colon])
            let token = String(trimmed[trimmed.index(after: colon)...])
            guard isValidName(name) else {
                throw ConsoleStartupError("\(at): the name must be 1 to 64 characters of [A-Za-z0-9._@-]")
            }
            guard token.utf8.count >= minimumTokenLength,
                token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
            else {
                throw ConsoleStartupError(
                    "\(at): the token must be at least \(minimumTokenLength) printable ASCII characters without spaces (e.g. from `openssl rand -hex 24`)")
            }
            guard names.insert(name).inserted else { throw ConsoleStartupError("\(at): \(name) is named twice") }
            guard tokens.insert(Array(token.utf8)).inserted else {
                throw ConsoleStartupError("\(at): the same token is given twice; each person needs a token of their own")
            }
            entries.append(Entry(name: name, token: Array(token.utf8)))
        }
        guard !entries.isEmpty else {
            throw ConsoleStartupError("--auth: \(WorkerSpec.quote(origin)) names nobody (lines NAME:TOKEN)")
        }
        return TokenFile(entries: entries)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F
                    || b == 0x40 || b == 0x2D
            }
    }

    /// The name whose token `presented` is; nil when none. Every entry is compared in full, in
    /// time that depends on the lengths only.
    public func user(presenting presented: some Collection<UInt8>) -> String? {
        let candidate = Array(presented)
        var found: String?
        for entry in entries {
            if Self.constantTimeEqual(entry.token, candidate) && found == nil { found = entry.name }
        }
        return found
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        if a.count != b.count { difference |= 1 }
        let n = min(a.count, b.count)
        for i in 0..<n { difference |= a[i] ^ b[i] }
        // Touch the longer one's tail too, so the time does not tell where they differ.
        for i in n..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : b[i]) & 0 }
        return difference == 0
    }
}

/// Random identifiers: session ids, CSRF tokens, command ids (the system's secure generator).
enum RandomText {
    static func hex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for _ in 0..<count {
            let b = UInt8.random(in: .min ... .max, using: &generator)
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Logged-in browsers: a session id in an HttpOnly, SameSite=Strict cookie names the user.
public final class SessionStore: Sendable {
    public static let cookieName = "ecp_console_session"
    /// How long a login lasts.
    public static let lifetimeSeconds: Int64 = 12 * 3600
    /// The most sessions kept; the oldest is forgotten first.
    static let capacity = 4096

    private struct Session {
        var user: String
        var expires: Int64
    }

    private let sessions = Mutex<[String: Session]>([:])

    public init() {}

    /// A new session for `user`; returns its id.
    public func open(user: String) -> String {
        let id = RandomText.hex(bytes: 32)
        let now = Self.now()
        sessions.withLock { table in
            if table.count >= Self.capacity {
                table = table.filter { $0.value.expires > now }
                if table.count >= Self.capacity, let oldest = table.min(by: { $0.value.expires < $1.value.expires })?.key {
                    table[oldest] = nil
                }
            }
            table[id] = Session(user: user, expires: now + Self.lifetimeSeconds)
        }
        return id
    }

    /// The user of a live session.
    public func user(session id: String) -> String? {
        guard id.utf8.count == 64 else { return nil }
        let now = Self.now()
        return sessions.withLock { table in
            guard let session = table[id] else { return nil }
            if session.expires <= now {
                table[id] = nil
                return nil
            }
            return session.user
        }
    }

    public func close(session id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec)
    }
}
