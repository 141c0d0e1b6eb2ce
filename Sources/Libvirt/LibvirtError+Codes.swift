// Generated from libvirt 9.0.0's libvirt-api.xml (/usr/share/libvirt/api/libvirt-api.xml: the
// enums virErrorNumber and virErrorDomain of virterror.h), below the hand-written type
// definitions. Each value is one constant and one row of its type's `known` table, which pairs
// the constant with the C name; regenerate both together when moving to a newer libvirt. A
// constant is named after the C name without VIR_ERR_ / VIR_FROM_ (VIR_ for the VIR_WAR_
// warnings), in lower camel case: VIR_ERR_NO_DOMAIN is noDomain, VIR_WAR_NO_NETWORK warNoNetwork.
// Values the tables do not cover stay valid codes and domains (a newer libvirt adds some) and are
// named VIR_ERR_UNKNOWN_<n> / VIR_FROM_UNKNOWN_<n> rather than trapped on.

extension LibvirtError {
    /// A libvirt error code: a `virErrorNumber` value, such as ``noDomain`` (`VIR_ERR_NO_DOMAIN`, 42).
    ///
    /// A struct rather than an enum so that a code added by a libvirt newer than these bindings is
    /// kept as it is: it compares like the known ones, and its ``name`` shows the number. It
    /// encodes as its number.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        /// The `virErrorNumber` value.
        public var rawValue: Int32

        /// The code of a `virErrorNumber` value, known or not.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        init(_ rawValue: Int32) {
            self.rawValue = rawValue
        }

        /// The C enum name, for example `"VIR_ERR_NO_DOMAIN"`; `"VIR_ERR_UNKNOWN_<n>"` for a value
        /// ``known`` does not list.
        public var name: String {
            Self.names[rawValue] ?? "VIR_ERR_UNKNOWN_\(rawValue)"
        }

        /// The C enum name, as ``name``.
        public var description: String { name }

        private static let names = Dictionary(known.map { ($0.value.rawValue, $0.name) }) { first, _ in first }
    }

    /// Where a libvirt error came from: a `virErrorDomain` value, such as ``test``
    /// (`VIR_FROM_TEST`, 12) or ``qemu`` (`VIR_FROM_QEMU`, 10).
    ///
    /// A struct rather than an enum for the same reason as ``Code``. It encodes as its number.
    public struct Domain: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        /// The `virErrorDomain` value.
        public var rawValue: Int32

        /// The domain of a `virErrorDomain` value, known or not.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        init(_ rawValue: Int32) {
            self.rawValue = rawValue
        }

        /// The C enum name, for example `"VIR_FROM_TEST"`; `"VIR_FROM_UNKNOWN_<n>"` for a value
        /// ``known`` does not list.
        public var name: String {
            Self.names[rawValue] ?? "VIR_FROM_UNKNOWN_\(rawValue)"
        }

        /// The C enum name, as ``name``.
        public var description: String { name }

        private static let names = Dictionary(known.map { ($0.value.rawValue, $0.name) }) { first, _ in first }
    }

    /// How severe a libvirt error is: a `virErrorLevel` value. It encodes as its number.
    public struct Level: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        /// The `virErrorLevel` value.
        public var rawValue: Int32

        /// The level of a `virErrorLevel` value, known or not.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        /// `VIR_ERR_NONE` (0).
        public static let none = Self(rawValue: 0)
        /// `VIR_ERR_WARNING` (1): a simple warning.
        public static let warning = Self(rawValue: 1)
        /// `VIR_ERR_ERROR` (2): an error.
        public static let error = Self(rawValue: 2)

        /// The protocol's word for the level: `"none"`, `"warning"` or `"error"`; another value
        /// gives `"unknown_<n>"`.
        public var name: String {
            switch self {
            case .none: "none"
            case .warning: "warning"
            case .error: "error"
            default: "unknown_\(rawValue)"
            }
        }

        /// The protocol's word, as ``name``.
        public var description: String { name }
    }
}

// MARK: - Generated

extension LibvirtError.Code {
    /// `VIR_ERR_OK` (0)
    public static let ok = Self(0)
    /// `VIR_ERR_INTERNAL_ERROR` (1): internal error.
    public static let internalError = Self(1)
    /// `VIR_ERR_NO_MEMORY` (2): memory allocation failure.
    public static let noMemory = Self(2)
    /// `VIR_ERR_NO_SUPPORT` (3): no support for this function.
    public static let noSupport = Self(3)
    /// `VIR_ERR_UNKNOWN_HOST` (4): could not resolve hostname.
    public static let unknownHost = Self(4)
    /// `VIR_ERR_NO_CONNECT` (5): can't connect to hypervisor.
    public static let noConnect = Self(5)
    /// `VIR_ERR_INVALID_CONN` (6): invalid connection object.
    public static let invalidConn = Self(6)
    /// `VIR_ERR_INVALID_DOMAIN` (7): invalid domain object.
    public static let invalidDomain = Self(7)
    /// `VIR_ERR_INVALID_ARG` (8): invalid function argument.
    public static let invalidArg = Self(8)
    /// `VIR_ERR_OPERATION_FAILED` (9): a command to hypervisor failed.
    public static let operationFailed = Self(9)
    /// `VIR_ERR_GET_FAILED` (10): a HTTP GET command to failed.
    public static let getFailed = Self(10)
    /// `VIR_ERR_POST_FAILED` (11): a HTTP POST command to failed.
    public static let postFailed = Self(11)
    /// `VIR_ERR_HTTP_ERROR` (12): unexpected HTTP error code.
    public static let httpError = Self(12)
    /// `VIR_ERR_SEXPR_SERIAL` (13): failure to serialize an S-Expr.
    public static let sexprSerial = Self(13)
    /// `VIR_ERR_NO_XEN` (14): could not open Xen hypervisor control.
    public static let noXen = Self(14)
    /// `VIR_ERR_XEN_CALL` (15): failure doing an hypervisor call.
    public static let xenCall = Self(15)
    /// `VIR_ERR_OS_TYPE` (16): unknown OS type.
    public static let osType = Self(16)
    /// `VIR_ERR_NO_KERNEL` (17): missing kernel information.
    public static let noKernel = Self(17)
    /// `VIR_ERR_NO_ROOT` (18): missing root device information.
    public static let noRoot = Self(18)
    /// `VIR_ERR_NO_SOURCE` (19): missing source device information.
    public static let noSource = Self(19)
    /// `VIR_ERR_NO_TARGET` (20): missing target device information.
    public static let noTarget = Self(20)
    /// `VIR_ERR_NO_NAME` (21): missing domain name information.
    public static let noName = Self(21)
    /// `VIR_ERR_NO_OS` (22): missing domain OS information.
    public static let noOs = Self(22)
    /// `VIR_ERR_NO_DEVICE` (23): missing domain devices information.
    public static let noDevice = Self(23)
    /// `VIR_ERR_NO_XENSTORE` (24): could not open Xen Store control.
    public static let noXenstore = Self(24)
    /// `VIR_ERR_DRIVER_FULL` (25): too many drivers registered.
    public static let driverFull = Self(25)
    /// `VIR_ERR_CALL_FAILED` (26): not supported by the drivers (DEPRECATED).
    public static let callFailed = Self(26)
    /// `VIR_ERR_XML_ERROR` (27): an XML description is not well formed or broken.
    public static let xmlError = Self(27)
    /// `VIR_ERR_DOM_EXIST` (28): the domain already exist.
    public static let domExist = Self(28)
    /// `VIR_ERR_OPERATION_DENIED` (29): operation forbidden on read-only connections.
    public static let operationDenied = Self(29)
    /// `VIR_ERR_OPEN_FAILED` (30): failed to open a conf file.
    public static let openFailed = Self(30)
    /// `VIR_ERR_READ_FAILED` (31): failed to read a conf file.
    public static let readFailed = Self(31)
    /// `VIR_ERR_PARSE_FAILED` (32): failed to parse a conf file.
    public static let parseFailed = Self(32)
    /// `VIR_ERR_CONF_SYNTAX` (33): failed to parse the syntax of a conf file.
    public static let confSyntax = Self(33)
    /// `VIR_ERR_WRITE_FAILED` (34): failed to write a conf file.
    public static let writeFailed = Self(34)
    /// `VIR_ERR_XML_DETAIL` (35): detail of an XML error.
    public static let xmlDetail = Self(35)
    /// `VIR_ERR_INVALID_NETWORK` (36): invalid network object.
    public static let invalidNetwork = Self(36)
    /// `VIR_ERR_NETWORK_EXIST` (37): the network already exist.
    public static let networkExist = Self(37)
    /// `VIR_ERR_SYSTEM_ERROR` (38): general system call failure.
    public static let systemError = Self(38)
    /// `VIR_ERR_RPC` (39): some sort of RPC error.
    public static let rpc = Self(39)
    /// `VIR_ERR_GNUTLS_ERROR` (40): error from a GNUTLS call.
    public static let gnutlsError = Self(40)
    /// `VIR_WAR_NO_NETWORK` (41): failed to start network.
    public static let warNoNetwork = Self(41)
    /// `VIR_ERR_NO_DOMAIN` (42): domain not found or unexpectedly disappeared.
    public static let noDomain = Self(42)
    /// `VIR_ERR_NO_NETWORK` (43): network not found.
    public static let noNetwork = Self(43)
    /// `VIR_ERR_INVALID_MAC` (44): invalid MAC address.
    public static let invalidMac = Self(44)
    /// `VIR_ERR_AUTH_FAILED` (45): authentication failed.
    public static let authFailed = Self(45)
    /// `VIR_ERR_INVALID_STORAGE_POOL` (46): invalid storage pool object.
    public static let invalidStoragePool = Self(46)
    /// `VIR_ERR_INVALID_STORAGE_VOL` (47): invalid storage vol object.
    public static let invalidStorageVol = Self(47)
    /// `VIR_WAR_NO_STORAGE` (48): failed to start storage.
    public static let warNoStorage = Self(48)
    /// `VIR_ERR_NO_STORAGE_POOL` (49): storage pool not found.
    public static let noStoragePool = Self(49)
    /// `VIR_ERR_NO_STORAGE_VOL` (50): storage volume not found.
    public static let noStorageVol = Self(50)
    /// `VIR_WAR_NO_NODE` (51): failed to start node driver.
    public static let warNoNode = Self(51)
    /// `VIR_ERR_INVALID_NODE_DEVICE` (52): invalid node device object.
    public static let invalidNodeDevice = Self(52)
    /// `VIR_ERR_NO_NODE_DEVICE` (53): node device not found.
    public static let noNodeDevice = Self(53)
    /// `VIR_ERR_NO_SECURITY_MODEL` (54): security model not found.
    public static let noSecurityModel = Self(54)
    /// `VIR_ERR_OPERATION_INVALID` (55): operation is not applicable at this time.
    public static let operationInvalid = Self(55)
    /// `VIR_WAR_NO_INTERFACE` (56): failed to start interface driver.
    public static let warNoInterface = Self(56)
    /// `VIR_ERR_NO_INTERFACE` (57): interface driver not running.
    public static let noInterface = Self(57)
    /// `VIR_ERR_INVALID_INTERFACE` (58): invalid interface object.
    public static let invalidInterface = Self(58)
    /// `VIR_ERR_MULTIPLE_INTERFACES` (59): more than one matching interface found.
    public static let multipleInterfaces = Self(59)
    /// `VIR_WAR_NO_NWFILTER` (60): failed to start nwfilter driver.
    public static let warNoNwfilter = Self(60)
    /// `VIR_ERR_INVALID_NWFILTER` (61): invalid nwfilter object.
    public static let invalidNwfilter = Self(61)
    /// `VIR_ERR_NO_NWFILTER` (62): nw filter pool not found.
    public static let noNwfilter = Self(62)
    /// `VIR_ERR_BUILD_FIREWALL` (63): nw filter pool not found.
    public static let buildFirewall = Self(63)
    /// `VIR_WAR_NO_SECRET` (64): failed to start secret storage.
    public static let warNoSecret = Self(64)
    /// `VIR_ERR_INVALID_SECRET` (65): invalid secret.
    public static let invalidSecret = Self(65)
    /// `VIR_ERR_NO_SECRET` (66): secret not found.
    public static let noSecret = Self(66)
    /// `VIR_ERR_CONFIG_UNSUPPORTED` (67): unsupported configuration construct.
    public static let configUnsupported = Self(67)
    /// `VIR_ERR_OPERATION_TIMEOUT` (68): timeout occurred during operation.
    public static let operationTimeout = Self(68)
    /// `VIR_ERR_MIGRATE_PERSIST_FAILED` (69): a migration worked, but making the VM persist on the dest host failed.
    public static let migratePersistFailed = Self(69)
    /// `VIR_ERR_HOOK_SCRIPT_FAILED` (70): a synchronous hook script failed.
    public static let hookScriptFailed = Self(70)
    /// `VIR_ERR_INVALID_DOMAIN_SNAPSHOT` (71): invalid domain snapshot.
    public static let invalidDomainSnapshot = Self(71)
    /// `VIR_ERR_NO_DOMAIN_SNAPSHOT` (72): domain snapshot not found.
    public static let noDomainSnapshot = Self(72)
    /// `VIR_ERR_INVALID_STREAM` (73): stream pointer not valid.
    public static let invalidStream = Self(73)
    /// `VIR_ERR_ARGUMENT_UNSUPPORTED` (74): valid API use but unsupported by the given driver.
    public static let argumentUnsupported = Self(74)
    /// `VIR_ERR_STORAGE_PROBE_FAILED` (75): storage pool probe failed.
    public static let storageProbeFailed = Self(75)
    /// `VIR_ERR_STORAGE_POOL_BUILT` (76): storage pool already built.
    public static let storagePoolBuilt = Self(76)
    /// `VIR_ERR_SNAPSHOT_REVERT_RISKY` (77): force was not requested for a risky domain snapshot revert.
    public static let snapshotRevertRisky = Self(77)
    /// `VIR_ERR_OPERATION_ABORTED` (78): operation on a domain was canceled/aborted by user.
    public static let operationAborted = Self(78)
    /// `VIR_ERR_AUTH_CANCELLED` (79): authentication cancelled.
    public static let authCancelled = Self(79)
    /// `VIR_ERR_NO_DOMAIN_METADATA` (80): the metadata is not present.
    public static let noDomainMetadata = Self(80)
    /// `VIR_ERR_MIGRATE_UNSAFE` (81): migration is not safe.
    public static let migrateUnsafe = Self(81)
    /// `VIR_ERR_OVERFLOW` (82): integer overflow.
    public static let overflow = Self(82)
    /// `VIR_ERR_BLOCK_COPY_ACTIVE` (83): action prevented by block copy job.
    public static let blockCopyActive = Self(83)
    /// `VIR_ERR_OPERATION_UNSUPPORTED` (84): the requested operation is not supported.
    public static let operationUnsupported = Self(84)
    /// `VIR_ERR_SSH` (85): error in ssh transport driver.
    public static let ssh = Self(85)
    /// `VIR_ERR_AGENT_UNRESPONSIVE` (86): guest agent is unresponsive, not running or not usable.
    public static let agentUnresponsive = Self(86)
    /// `VIR_ERR_RESOURCE_BUSY` (87): resource is already in use.
    public static let resourceBusy = Self(87)
    /// `VIR_ERR_ACCESS_DENIED` (88): operation on the object/resource was denied.
    public static let accessDenied = Self(88)
    /// `VIR_ERR_DBUS_SERVICE` (89): error from a dbus service.
    public static let dbusService = Self(89)
    /// `VIR_ERR_STORAGE_VOL_EXIST` (90): the storage vol already exists.
    public static let storageVolExist = Self(90)
    /// `VIR_ERR_CPU_INCOMPATIBLE` (91): given CPU is incompatible with host CPU.
    public static let cpuIncompatible = Self(91)
    /// `VIR_ERR_XML_INVALID_SCHEMA` (92): XML document doesn't validate against schema.
    public static let xmlInvalidSchema = Self(92)
    /// `VIR_ERR_MIGRATE_FINISH_OK` (93): finish API succeeded but it is expected to return NULL.
    public static let migrateFinishOk = Self(93)
    /// `VIR_ERR_AUTH_UNAVAILABLE` (94): authentication unavailable.
    public static let authUnavailable = Self(94)
    /// `VIR_ERR_NO_SERVER` (95): server was not found.
    public static let noServer = Self(95)
    /// `VIR_ERR_NO_CLIENT` (96): client was not found.
    public static let noClient = Self(96)
    /// `VIR_ERR_AGENT_UNSYNCED` (97): guest agent replies with wrong id to guest-sync command (DEPRECATED).
    public static let agentUnsynced = Self(97)
    /// `VIR_ERR_LIBSSH` (98): error in libssh transport driver.
    public static let libssh = Self(98)
    /// `VIR_ERR_DEVICE_MISSING` (99): fail to find the desired device.
    public static let deviceMissing = Self(99)
    /// `VIR_ERR_INVALID_NWFILTER_BINDING` (100): invalid nwfilter binding.
    public static let invalidNwfilterBinding = Self(100)
    /// `VIR_ERR_NO_NWFILTER_BINDING` (101): no nwfilter binding.
    public static let noNwfilterBinding = Self(101)
    /// `VIR_ERR_INVALID_DOMAIN_CHECKPOINT` (102): invalid domain checkpoint.
    public static let invalidDomainCheckpoint = Self(102)
    /// `VIR_ERR_NO_DOMAIN_CHECKPOINT` (103): domain checkpoint not found.
    public static let noDomainCheckpoint = Self(103)
    /// `VIR_ERR_NO_DOMAIN_BACKUP` (104): domain backup job id not found.
    public static let noDomainBackup = Self(104)
    /// `VIR_ERR_INVALID_NETWORK_PORT` (105): invalid network port object.
    public static let invalidNetworkPort = Self(105)
    /// `VIR_ERR_NETWORK_PORT_EXIST` (106): the network port already exist.
    public static let networkPortExist = Self(106)
    /// `VIR_ERR_NO_NETWORK_PORT` (107): network port not found.
    public static let noNetworkPort = Self(107)
    /// `VIR_ERR_NO_HOSTNAME` (108): no domain's hostname found.
    public static let noHostname = Self(108)
    /// `VIR_ERR_CHECKPOINT_INCONSISTENT` (109): checkpoint can't be used.
    public static let checkpointInconsistent = Self(109)
    /// `VIR_ERR_MULTIPLE_DOMAINS` (110): more than one matching domain found.
    public static let multipleDomains = Self(110)

    /// Every code of libvirt 9.0.0 with its C enum name, in order of value.
    public static let known: [(value: Self, name: String)] = [
        (.ok, "VIR_ERR_OK"),
        (.internalError, "VIR_ERR_INTERNAL_ERROR"),
        (.noMemory, "VIR_ERR_NO_MEMORY"),
        (.noSupport, "VIR_ERR_NO_SUPPORT"),
        (.unknownHost, "VIR_ERR_UNKNOWN_HOST"),
        (.noConnect, "VIR_ERR_NO_CONNECT"),
        (.invalidConn, "VIR_ERR_INVALID_CONN"),
        (.invalidDomain, "VIR_ERR_INVALID_DOMAIN"),
        (.invalidArg, "VIR_ERR_INVALID_ARG"),
        (.operationFailed, "VIR_ERR_OPERATION_FAILED"),
        (.getFailed, "VIR_ERR_GET_FAILED"),
        (.postFailed, "VIR_ERR_POST_FAILED"),
        (.httpError, "VIR_ERR_HTTP_ERROR"),
        (.sexprSerial, "VIR_ERR_SEXPR_SERIAL"),
        (.noXen, "VIR_ERR_NO_XEN"),
        (.xenCall, "VIR_ERR_XEN_CALL"),
        (.osType, "VIR_ERR_OS_TYPE"),
        (.noKernel, "VIR_ERR_NO_KERNEL"),
        (.noRoot, "VIR_ERR_NO_ROOT"),
        (.noSource, "VIR_ERR_NO_SOURCE"),
        (.noTarget, "VIR_ERR_NO_TARGET"),
        (.noName, "VIR_ERR_NO_NAME"),
        (.noOs, "VIR_ERR_NO_OS"),
        (.noDevice, "VIR_ERR_NO_DEVICE"),
        (.noXenstore, "VIR_ERR_NO_XENSTORE"),
        (.driverFull, "VIR_ERR_DRIVER_FULL"),
        (.callFailed, "VIR_ERR_CALL_FAILED"),
        (.xmlError, "VIR_ERR_XML_ERROR"),
        (.domExist, "VIR_ERR_DOM_EXIST"),
        (.operationDenied, "VIR_ERR_OPERATION_DENIED"),
        (.openFailed, "VIR_ERR_OPEN_FAILED"),
        (.readFailed, "VIR_ERR_READ_FAILED"),
        (.parseFailed, "VIR_ERR_PARSE_FAILED"),
        (.confSyntax, "VIR_ERR_CONF_SYNTAX"),
        (.writeFailed, "VIR_ERR_WRITE_FAILED"),
        (.xmlDetail, "VIR_ERR_XML_DETAIL"),
        (.invalidNetwork, "VIR_ERR_INVALID_NETWORK"),
        (.networkExist, "VIR_ERR_NETWORK_EXIST"),
        (.systemError, "VIR_ERR_SYSTEM_ERROR"),
        (.rpc, "VIR_ERR_RPC"),
        (.gnutlsError, "VIR_ERR_GNUTLS_ERROR"),
        (.warNoNetwork, "VIR_WAR_NO_NETWORK"),
        (.noDomain, "VIR_ERR_NO_DOMAIN"),
        (.noNetwork, "VIR_ERR_NO_NETWORK"),
        (.invalidMac, "VIR_ERR_INVALID_MAC"),
        (.authFailed, "VIR_ERR_AUTH_FAILED"),
        (.invalidStoragePool, "VIR_ERR_INVALID_STORAGE_POOL"),
        (.invalidStorageVol, "VIR_ERR_INVALID_STORAGE_VOL"),
        (.warNoStorage, "VIR_WAR_NO_STORAGE"),
        (.noStoragePool, "VIR_ERR_NO_STORAGE_POOL"),
        (.noStorageVol, "VIR_ERR_NO_STORAGE_VOL"),
        (.warNoNode, "VIR_WAR_NO_NODE"),
        (.invalidNodeDevice, "VIR_ERR_INVALID_NODE_DEVICE"),
        (.noNodeDevice, "VIR_ERR_NO_NODE_DEVICE"),
        (.noSecurityModel, "VIR_ERR_NO_SECURITY_MODEL"),
        (.operationInvalid, "VIR_ERR_OPERATION_INVALID"),
        (.warNoInterface, "VIR_WAR_NO_INTERFACE"),
        (.noInterface, "VIR_ERR_NO_INTERFACE"),
        (.invalidInterface, "VIR_ERR_INVALID_INTERFACE"),
        (.multipleInterfaces, "VIR_ERR_MULTIPLE_INTERFACES"),
        (.warNoNwfilter, "VIR_WAR_NO_NWFILTER"),
        (.invalidNwfilter, "VIR_ERR_INVALID_NWFILTER"),
        (.noNwfilter, "VIR_ERR_NO_NWFILTER"),
        (.buildFirewall, "VIR_ERR_BUILD_FIREWALL"),
        (.warNoSecret, "VIR_WAR_NO_SECRET"),
        (.invalidSecret, "VIR_ERR_INVALID_SECRET"),
        (.noSecret, "VIR_ERR_NO_SECRET"),
        (.configUnsupported, "VIR_ERR_CONFIG_UNSUPPORTED"),
        (.operationTimeout, "VIR_ERR_OPERATION_TIMEOUT"),
        (.migratePersistFailed, "VIR_ERR_MIGRATE_PERSIST_FAILED"),
        (.hookScriptFailed, "VIR_ERR_HOOK_SCRIPT_FAILED"),
        (.invalidDomainSnapshot, "VIR_ERR_INVALID_DOMAIN_SNAPSHOT"),
        (.noDomainSnapshot, "VIR_ERR_NO_DOMAIN_SNAPSHOT"),
        (.invalidStream, "VIR_ERR_INVALID_STREAM"),
        (.argumentUnsupported, "VIR_ERR_ARGUMENT_UNSUPPORTED"),
        (.storageProbeFailed, "VIR_ERR_STORAGE_PROBE_FAILED"),
        (.storagePoolBuilt, "VIR_ERR_STORAGE_POOL_BUILT"),
        (.snapshotRevertRisky, "VIR_ERR_SNAPSHOT_REVERT_RISKY"),
        (.operationAborted, "VIR_ERR_OPERATION_ABORTED"),
        (.authCancelled, "VIR_ERR_AUTH_CANCELLED"),
        (.noDomainMetadata, "VIR_ERR_NO_DOMAIN_METADATA"),
        (.migrateUnsafe, "VIR_ERR_MIGRATE_UNSAFE"),
        (.overflow, "VIR_ERR_OVERFLOW"),
        (.blockCopyActive, "VIR_ERR_BLOCK_COPY_ACTIVE"),
        (.operationUnsupported, "VIR_ERR_OPERATION_UNSUPPORTED"),
        (.ssh, "VIR_ERR_SSH"),
        (.agentUnresponsive, "VIR_ERR_AGENT_UNRESPONSIVE"),
        (.resourceBusy, "VIR_ERR_RESOURCE_BUSY"),
        (.accessDenied, "VIR_ERR_ACCESS_DENIED"),
        (.dbusService, "VIR_ERR_DBUS_SERVICE"),
        (.storageVolExist, "VIR_ERR_STORAGE_VOL_EXIST"),
        (.cpuIncompatible, "VIR_ERR_CPU_INCOMPATIBLE"),
        (.xmlInvalidSchema, "VIR_ERR_XML_INVALID_SCHEMA"),
        (.migrateFinishOk, "VIR_ERR_MIGRATE_FINISH_OK"),
        (.authUnavailable, "VIR_ERR_AUTH_UNAVAILABLE"),
        (.noServer, "VIR_ERR_NO_SERVER"),
        (.noClient, "VIR_ERR_NO_CLIENT"),
        (.agentUnsynced, "VIR_ERR_AGENT_UNSYNCED"),
        (.libssh, "VIR_ERR_LIBSSH"),
        (.deviceMissing, "VIR_ERR_DEVICE_MISSING"),
        (.invalidNwfilterBinding, "VIR_ERR_INVALID_NWFILTER_BINDING"),
        (.noNwfilterBinding, "VIR_ERR_NO_NWFILTER_BINDING"),
        (.invalidDomainCheckpoint, "VIR_ERR_INVALID_DOMAIN_CHECKPOINT"),
        (.noDomainCheckpoint, "VIR_ERR_NO_DOMAIN_CHECKPOINT"),
        (.noDomainBackup, "VIR_ERR_NO_DOMAIN_BACKUP"),
        (.invalidNetworkPort, "VIR_ERR_INVALID_NETWORK_PORT"),
        (.networkPortExist, "VIR_ERR_NETWORK_PORT_EXIST"),
        (.noNetworkPort, "VIR_ERR_NO_NETWORK_PORT"),
        (.noHostname, "VIR_ERR_NO_HOSTNAME"),
        (.checkpointInconsistent, "VIR_ERR_CHECKPOINT_INCONSISTENT"),
        (.multipleDomains, "VIR_ERR_MULTIPLE_DOMAINS"),
    ]
}

extension LibvirtError.Domain {
    /// `VIR_FROM_NONE` (0)
    public static let none = Self(0)
    /// `VIR_FROM_XEN` (1): error at Xen hypervisor layer.
    public static let xen = Self(1)
    /// `VIR_FROM_XEND` (2): error at connection with xend daemon.
    public static let xend = Self(2)
    /// `VIR_FROM_XENSTORE` (3): error at connection with xen store.
    public static let xenstore = Self(3)
    /// `VIR_FROM_SEXPR` (4): error in the S-Expression code.
    public static let sexpr = Self(4)
    /// `VIR_FROM_XML` (5): error in the XML code.
    public static let xml = Self(5)
    /// `VIR_FROM_DOM` (6): error when operating on a domain.
    public static let dom = Self(6)
    /// `VIR_FROM_RPC` (7): error in the XML-RPC code.
    public static let rpc = Self(7)
    /// `VIR_FROM_PROXY` (8): error in the proxy code; unused since 0.8.6.
    public static let proxy = Self(8)
    /// `VIR_FROM_CONF` (9): error in the configuration file handling.
    public static let conf = Self(9)
    /// `VIR_FROM_QEMU` (10): error at the QEMU daemon.
    public static let qemu = Self(10)
    /// `VIR_FROM_NET` (11): error when operating on a network.
    public static let net = Self(11)
    /// `VIR_FROM_TEST` (12): error from test driver.
    public static let test = Self(12)
    /// `VIR_FROM_REMOTE` (13): error from remote driver.
    public static let remote = Self(13)
    /// `VIR_FROM_OPENVZ` (14): error from OpenVZ driver.
    public static let openvz = Self(14)
    /// `VIR_FROM_XENXM` (15): error at Xen XM layer.
    public static let xenxm = Self(15)
    /// `VIR_FROM_STATS_LINUX` (16): error in the Linux Stats code.
    public static let statsLinux = Self(16)
    /// `VIR_FROM_LXC` (17): error from Linux Container driver.
    public static let lxc = Self(17)
    /// `VIR_FROM_STORAGE` (18): error from storage driver.
    public static let storage = Self(18)
    /// `VIR_FROM_NETWORK` (19): error from network config.
    public static let network = Self(19)
    /// `VIR_FROM_DOMAIN` (20): error from domain config.
    public static let domain = Self(20)
    /// `VIR_FROM_UML` (21): error at the UML driver; unused since 5.0.0.
    public static let uml = Self(21)
    /// `VIR_FROM_NODEDEV` (22): error from node device monitor.
    public static let nodedev = Self(22)
    /// `VIR_FROM_XEN_INOTIFY` (23): error from xen inotify layer.
    public static let xenInotify = Self(23)
    /// `VIR_FROM_SECURITY` (24): error from security framework.
    public static let security = Self(24)
    /// `VIR_FROM_VBOX` (25): error from VirtualBox driver.
    public static let vbox = Self(25)
    /// `VIR_FROM_INTERFACE` (26): error when operating on an interface.
    public static let interface = Self(26)
    /// `VIR_FROM_ONE` (27): the OpenNebula driver no longer exists. Retained for ABI/API compat only.
    public static let one = Self(27)
    /// `VIR_FROM_ESX` (28): error from ESX driver.
    public static let esx = Self(28)
    /// `VIR_FROM_PHYP` (29): error from the phyp driver, unused since 6.0.0.
    public static let phyp = Self(29)
    /// `VIR_FROM_SECRET` (30): error from secret storage.
    public static let secret = Self(30)
    /// `VIR_FROM_CPU` (31): error from CPU driver.
    public static let cpu = Self(31)
    /// `VIR_FROM_XENAPI` (32): error from XenAPI.
    public static let xenapi = Self(32)
    /// `VIR_FROM_NWFILTER` (33): error from network filter driver.
    public static let nwfilter = Self(33)
    /// `VIR_FROM_HOOK` (34): error from Synchronous hooks.
    public static let hook = Self(34)
    /// `VIR_FROM_DOMAIN_SNAPSHOT` (35): error from domain snapshot.
    public static let domainSnapshot = Self(35)
    /// `VIR_FROM_AUDIT` (36): error from auditing subsystem.
    public static let audit = Self(36)
    /// `VIR_FROM_SYSINFO` (37): error from sysinfo/SMBIOS.
    public static let sysinfo = Self(37)
    /// `VIR_FROM_STREAMS` (38): error from I/O streams.
    public static let streams = Self(38)
    /// `VIR_FROM_VMWARE` (39): error from VMware driver.
    public static let vmware = Self(39)
    /// `VIR_FROM_EVENT` (40): error from event loop impl.
    public static let event = Self(40)
    /// `VIR_FROM_LIBXL` (41): error from libxenlight driver.
    public static let libxl = Self(41)
    /// `VIR_FROM_LOCKING` (42): error from lock manager.
    public static let locking = Self(42)
    /// `VIR_FROM_HYPERV` (43): error from Hyper-V driver.
    public static let hyperv = Self(43)
    /// `VIR_FROM_CAPABILITIES` (44): error from capabilities.
    public static let capabilities = Self(44)
    /// `VIR_FROM_URI` (45): error from URI handling.
    public static let uri = Self(45)
    /// `VIR_FROM_AUTH` (46): error from auth handling.
    public static let auth = Self(46)
    /// `VIR_FROM_DBUS` (47): error from DBus.
    public static let dbus = Self(47)
    /// `VIR_FROM_PARALLELS` (48): error from Parallels.
    public static let parallels = Self(48)
    /// `VIR_FROM_DEVICE` (49): error from Device.
    public static let device = Self(49)
    /// `VIR_FROM_SSH` (50): error from libssh2 connection transport.
    public static let ssh = Self(50)
    /// `VIR_FROM_LOCKSPACE` (51): error from lockspace.
    public static let lockspace = Self(51)
    /// `VIR_FROM_INITCTL` (52): error from initctl device communication.
    public static let initctl = Self(52)
    /// `VIR_FROM_IDENTITY` (53): error from identity code.
    public static let identity = Self(53)
    /// `VIR_FROM_CGROUP` (54): error from cgroups.
    public static let cgroup = Self(54)
    /// `VIR_FROM_ACCESS` (55): error from access control manager.
    public static let access = Self(55)
    /// `VIR_FROM_SYSTEMD` (56): error from systemd code.
    public static let systemd = Self(56)
    /// `VIR_FROM_BHYVE` (57): error from bhyve driver.
    public static let bhyve = Self(57)
    /// `VIR_FROM_CRYPTO` (58): error from crypto code.
    public static let crypto = Self(58)
    /// `VIR_FROM_FIREWALL` (59): error from firewall.
    public static let firewall = Self(59)
    /// `VIR_FROM_POLKIT` (60): error from polkit code.
    public static let polkit = Self(60)
    /// `VIR_FROM_THREAD` (61): error from thread utils.
    public static let thread = Self(61)
    /// `VIR_FROM_ADMIN` (62): error from admin backend.
    public static let admin = Self(62)
    /// `VIR_FROM_LOGGING` (63): error from log manager.
    public static let logging = Self(63)
    /// `VIR_FROM_XENXL` (64): error from Xen xl config code.
    public static let xenxl = Self(64)
    /// `VIR_FROM_PERF` (65): error from perf.
    public static let perf = Self(65)
    /// `VIR_FROM_LIBSSH` (66): error from libssh connection transport.
    public static let libssh = Self(66)
    /// `VIR_FROM_RESCTRL` (67): error from resource control.
    public static let resctrl = Self(67)
    /// `VIR_FROM_FIREWALLD` (68): error from firewalld.
    public static let firewalld = Self(68)
    /// `VIR_FROM_DOMAIN_CHECKPOINT` (69): error from domain checkpoint.
    public static let domainCheckpoint = Self(69)
    /// `VIR_FROM_TPM` (70): error from TPM.
    public static let tpm = Self(70)
    /// `VIR_FROM_BPF` (71): error from BPF code.
    public static let bpf = Self(71)
    /// `VIR_FROM_CH` (72): error from Cloud-Hypervisor driver.
    public static let ch = Self(72)

    /// Every domain of libvirt 9.0.0 with its C enum name, in order of value.
    public static let known: [(value: Self, name: String)] = [
        (.none, "VIR_FROM_NONE"),
        (.xen, "VIR_FROM_XEN"),
        (.xend, "VIR_FROM_XEND"),
        (.xenstore, "VIR_FROM_XENSTORE"),
        (.sexpr, "VIR_FROM_SEXPR"),
        (.xml, "VIR_FROM_XML"),
        (.dom, "VIR_FROM_DOM"),
        (.rpc, "VIR_FROM_RPC"),
        (.proxy, "VIR_FROM_PROXY"),
        (.conf, "VIR_FROM_CONF"),
        (.qemu, "VIR_FROM_QEMU"),
        (.net, "VIR_FROM_NET"),
        (.test, "VIR_FROM_TEST"),
        (.remote, "VIR_FROM_REMOTE"),
        (.openvz, "VIR_FROM_OPENVZ"),
        (.xenxm, "VIR_FROM_XENXM"),
        (.statsLinux, "VIR_FROM_STATS_LINUX"),
        (.lxc, "VIR_FROM_LXC"),
        (.storage, "VIR_FROM_STORAGE"),
        (.network, "VIR_FROM_NETWORK"),
        (.domain, "VIR_FROM_DOMAIN"),
        (.uml, "VIR_FROM_UML"),
        (.nodedev, "VIR_FROM_NODEDEV"),
        (.xenInotify, "VIR_FROM_XEN_INOTIFY"),
        (.security, "VIR_FROM_SECURITY"),
        (.vbox, "VIR_FROM_VBOX"),
        (.interface, "VIR_FROM_INTERFACE"),
        (.one, "VIR_FROM_ONE"),
        (.esx, "VIR_FROM_ESX"),
        (.phyp, "VIR_FROM_PHYP"),
        (.secret, "VIR_FROM_SECRET"),
        (.cpu, "VIR_FROM_CPU"),
        (.xenapi, "VIR_FROM_XENAPI"),
        (.nwfilter, "VIR_FROM_NWFILTER"),
        (.hook, "VIR_FROM_HOOK"),
        (.domainSnapshot, "VIR_FROM_DOMAIN_SNAPSHOT"),
        (.audit, "VIR_FROM_AUDIT"),
        (.sysinfo, "VIR_FROM_SYSINFO"),
        (.streams, "VIR_FROM_STREAMS"),
        (.vmware, "VIR_FROM_VMWARE"),
        (.event, "VIR_FROM_EVENT"),
        (.libxl, "VIR_FROM_LIBXL"),
        (.locking, "VIR_FROM_LOCKING"),
        (.hyperv, "VIR_FROM_HYPERV"),
        (.capabilities, "VIR_FROM_CAPABILITIES"),
        (.uri, "VIR_FROM_URI"),
        (.auth, "VIR_FROM_AUTH"),
        (.dbus, "VIR_FROM_DBUS"),
        (.parallels, "VIR_FROM_PARALLELS"),
        (.device, "VIR_FROM_DEVICE"),
        (.ssh, "VIR_FROM_SSH"),
        (.lockspace, "VIR_FROM_LOCKSPACE"),
        (.initctl, "VIR_FROM_INITCTL"),
        (.identity, "VIR_FROM_IDENTITY"),
        (.cgroup, "VIR_FROM_CGROUP"),
        (.access, "VIR_FROM_ACCESS"),
        (.systemd, "VIR_FROM_SYSTEMD"),
        (.bhyve, "VIR_FROM_BHYVE"),
        (.crypto, "VIR_FROM_CRYPTO"),
        (.firewall, "VIR_FROM_FIREWALL"),
        (.polkit, "VIR_FROM_POLKIT"),
        (.thread, "VIR_FROM_THREAD"),
        (.admin, "VIR_FROM_ADMIN"),
        (.logging, "VIR_FROM_LOGGING"),
        (.xenxl, "VIR_FROM_XENXL"),
        (.perf, "VIR_FROM_PERF"),
        (.libssh, "VIR_FROM_LIBSSH"),
        (.resctrl, "VIR_FROM_RESCTRL"),
        (.firewalld, "VIR_FROM_FIREWALLD"),
        (.domainCheckpoint, "VIR_FROM_DOMAIN_CHECKPOINT"),
        (.tpm, "VIR_FROM_TPM"),
        (.bpf, "VIR_FROM_BPF"),
        (.ch, "VIR_FROM_CH"),
    ]
}
