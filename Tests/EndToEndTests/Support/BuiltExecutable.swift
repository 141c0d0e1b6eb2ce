import Foundation

/// The package's executables as the end-to-end tests find them: `$<variable>` when it is set,
/// else the one built beside the running test binary (the scratch path this run was built in; a
/// few levels up inside a bundle), else `<package>/.build/debug/<name>`.
enum BuiltExecutable {
    /// The package root: the first directory above this file that holds `Package.swift`.
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    static func url(_ name: String, variable: String) throws -> URL {
        let fm = FileManager.default
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty {
            guard isExecutableFile(path) else {
                throw BuiltExecutableError(description: "\(variable)=\(path) is not an executable file")
            }
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        var runningBinaries = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()]
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            runningBinaries.append(URL(fileURLWithPath: exe))
        }
        for binary in runningBinaries {
            var dir = binary.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent(name))
                dir.deleteLastPathComponent()
            }
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/\(name)"))
        if let found = candidates.first(where: { isExecutableFile($0.path) }) { return found }
        throw BuiltExecutableError(
            description: "\(name) not found; build it (swift build) or set \(variable). Looked at:\n"
                + candidates.map(\.path).joined(separator: "\n"))
    }

    /// An executable regular file (the build directory also holds `<name>.build` directories).
    static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.isExecutableFile(atPath: path)
            && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }
}

struct BuiltExecutableError: Error, CustomStringConvertible {
    var description: String
}
