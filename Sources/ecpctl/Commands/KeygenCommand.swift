import ArgumentParser
import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `ecpctl keygen --out DIR [--name NAME]`: a new CURVE key pair in two files.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).",
        discussion: """
            Key file format (shared with the worker, which reads its own NAME.key with \
            --curve-key-file and admits the clients' NAME.pub files found in --curve-clients): \
            UTF-8 text; blank lines and lines starting with # are ignored; other lines are \
            `name = value`, the names `public-key` and `secret-key`, each value a 40-character \
            Z85 key. NAME.key holds both keys and must stay private:

              # CURVE key pair (Z85). Secret: keep this file private (mode 0600).
              public-key = <40 Z85 characters>
              secret-key = <40 Z85 characters>

            NAME.pub holds only the `public-key` line and can be handed out. Give the worker's \
            NAME.pub (or its public key) to clients with --curve-server-key, and a client's \
            NAME.key with --curve-key (ecpctl, like the worker, refuses a secret key file that \
            others can read). Existing files are not overwritten without --force; a missing DIR \
            is made (mode 0700).

            Examples:
              ecpctl keygen --out /etc/ecp/keys --name worker
              ecpctl keygen --out ~/.ecp --name ops
              ecpctl --curve-server-key worker.pub --curve-key ~/.ecp/ops.key list
            """)

    @Option(help: ArgumentHelp("The directory to write the key files to.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("The files' base name: NAME.key and NAME.pub.", valueName: "name"))
    var name: String = "ecp"

    @Flag(help: "Replace existing key files.")
    var force = false

    func validate() throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.count <= 200, !name.hasPrefix("."), name.allSatisfy({ allowed.contains($0) }) else {
            throw ValidationError("--name must be letters, digits, '.', '_' or '-', not starting with '.'")
        }
        guard !out.isEmpty else { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try guarded {
            let directory = URL(fileURLWithPath: out)
            try makeDirectory(directory.path)
            let secretPath = directory.appendingPathComponent(name + ".key").path
            let publicPath = directory.appendingPathComponent(name + ".pub").path
            if !force {
                for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
                    throw CtlFailure(ExitStatus.usage, "\(Sanitize.display(path)) exists; use --force to replace it")
                }
            }
            let pair: CurveKeyPair
            do {
                pair = try CurveKeyPair.generate()
            } catch {
                throw CtlFailure(ExitStatus.software, "cannot make a CURVE key pair: \(error)")
            }
            try writeAtomically(CurveKeyFile.secretText(pair), to: secretPath, mode: 0o600)
            try writeAtomically(CurveKeyFile.publicText(pair), to: publicPath, mode: 0o644)
            Console.out(lines: [
                "wrote \(Sanitize.display(secretPath)) (secret key, mode 0600)",
                "wrote \(Sanitize.display(publicPath)) (public key)",
                "public-key = \(pair.publicKey)",
            ])
        }
    }

    private func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw CtlFailure(ExitStatus.usage, "--out: \(Sanitize.display(path)) is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CtlFailure(ExitStatus.failed, "cannot make directory \(Sanitize.display(path)): \(fileErrorReason(error))")
        }
    }

    /// Writes a new file next to `path` with `mode` from the start (never wider), then renames
    /// it over `path`, so a reader sees the old file or the whole new one.
    private func writeAtomically(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        func failure(_ what: String) -> CtlFailure {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return CtlFailure(ExitStatus.failed, "cannot \(what) \(Sanitize.display(path)): \(reason)")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("create") }
        // The umask may narrow the mode; set it exactly.
        guard fchmod(fd, mode) == 0 else {
            close(fd)
            throw failure("set the mode of")
        }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw failure("write")
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw failure("write")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("write") }
    }
}
