using NetArchTest.Rules;

namespace IoTHub.Tests.Architecture;

/// <summary>A module may use its own types, the shared Contracts and the Storage model (HubDb), never another module's internals.</summary>
public sealed class ModuleBoundaryTests
{
    private static readonly System.Reflection.Assembly Hub = typeof(IoTHub.HubApp).Assembly;

    // Not modules: the shared contracts, the UI (checked on its own), and the mediator's generated code.
    private static readonly string[] NotModules = ["Contracts", "Web", "Mediation"];

    /// <summary>Every top-level namespace under IoTHub that is a module, found in the assembly: a new module is covered
    /// without editing this test.</summary>
    private static readonly string[] Modules = Hub.GetTypes()
        .Select(t => t.Namespace).OfType<string>().Where(ns => ns.StartsWith("IoTHub.", StringComparison.Ordinal))
        .Select(ns => ns.Split('.')[1]).Distinct().Where(m => !NotModules.Contains(m)).Order().ToArray();

    public static IEnumerable<string> ModuleNames => Modules;

    [Test]
    public void The_modules_are_found_in_the_assembly() =>
        Assert.That(Modules, Is.SupersetOf(new[] { "Aggregation", "Commands", "Connectivity", "Devices", "Gateway", "Observability", "Storage", "Validation" }));

    [TestCaseSource(nameof(ModuleNames))]
    public void A_module_does_not_reach_into_other_modules(string module)
    {
        var others = Modules.Where(m => m != module && m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(Hub)
            .That().ResideInNamespace($"IoTHub.{module}")
            .ShouldNot().HaveDependencyOnAny(others)
            .GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, $"{module} depends on another module's types");
    }

    public static IEnumerable<string> ModulesBesideStorage => Modules.Where(m => m != "Storage");

    [TestCaseSource(nameof(ModulesBesideStorage))]
    public void A_module_uses_only_the_database_model_from_storage(string module)
    {
        var storageTypes = Hub.GetTypes().Where(t => t.Namespace?.StartsWith("IoTHub.Storage", StringComparison.Ordinal) == true
                && !typeof(IoTHub.Storage.HubDb).IsAssignableFrom(t) && !t.Name.StartsWith('<'))
            .Select(t => t.FullName!.Replace('+', '/')).ToArray();
        var result = Types.InAssembly(Hub).That().ResideInNamespace($"IoTHub.{module}").ShouldNot().HaveDependencyOnAny(storageTypes).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, $"{module} uses Storage types other than HubDb");
    }

    [Test]
    public void The_host_composes_modules_only_through_their_module_classes()
    {
        // HubApp calls each module's Add/Use/Map extensions by name and nothing else of theirs.
        var inner = Hub.GetTypes().Where(t => t.Namespace is { } ns && Modules.Any(m => ns.StartsWith($"IoTHub.{m}", StringComparison.Ordinal))
                && t.Name != $"{t.Namespace!.Split('.')[1]}Module" && !t.Name.StartsWith('<'))
            .Select(t => t.FullName!.Replace('+', '/')).ToArray();
        var result = Types.InAssembly(Hub).That().HaveName("HubApp").ShouldNot().HaveDependencyOnAny(inner).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, "the host reaches past a module's <Module>Module class");
    }

    [Test]
    public void The_web_ui_uses_only_what_modules_publish()
    {
        // The UI sends the modules' public requests through the mediator; it never touches their internals
        // (handlers, entities, the database), and no module depends on the UI.
        var assembly = Hub;
        var internals = assembly.GetTypes()
            .Where(t => !t.IsVisible && t.Namespace is { } ns && Modules.Any(m => ns.StartsWith($"IoTHub.{m}", StringComparison.Ordinal)) && !t.Name.StartsWith('<'))
            .Select(t => t.FullName!.Replace('+', '/')).ToArray();
        // Namespaces are matched as prefixes by NetArchTest: "IoTHub.Web" alone would take in IoTHub.Webhooks too.
        const string web = @"^IoTHub\.Web(\.|$)";
        var result = Types.InAssembly(assembly).That().ResideInNamespaceMatching(web).ShouldNot().HaveDependencyOnAny(internals).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, "the web UI reaches into a module's internal types");
        Assert.That(internals, Is.Not.Empty);
        var webTypes = assembly.GetTypes().Where(t => t.Namespace is { } ns && System.Text.RegularExpressions.Regex.IsMatch(ns, web) && !t.Name.StartsWith('<'))
            .Select(t => t.FullName!.Replace('+', '/')).ToArray();
        Assert.That(webTypes, Is.Not.Empty);
        var intoWeb = Types.InAssembly(assembly).That().ResideInNamespace("IoTHub").And().DoNotResideInNamespaceMatching(web)
            .And().DoNotHaveName("HubApp").ShouldNot().HaveDependencyOnAny(webTypes).GetResult();
        Assert.That(intoWeb.FailingTypeNames ?? [], Is.Empty, "a module depends on the web UI");
        var seen = Types.InAssembly(assembly).That().HaveName("HubApp").Should().HaveDependencyOnAny(webTypes).GetResult();
        Assert.That(seen.IsSuccessful, Is.True, "the rule sees a dependency on the UI (the host's on WebModule)");
    }

    [Test]
    public void Storage_names_no_other_module()
    {
        var others = Modules.Where(m => m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(Hub).That().ResideInNamespace("IoTHub.Storage")
            .ShouldNot().HaveDependencyOnAny(others).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void Contracts_depend_on_no_module()
    {
        var result = Types.InAssembly(Hub).That().ResideInNamespace("IoTHub.Contracts")
            .ShouldNot().HaveDependencyOnAny(Modules.Select(m => $"IoTHub.{m}").ToArray()).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void The_rules_see_real_dependencies()
    {
        // Guards the tests above against passing vacuously: Connectivity does use the shared contracts.
        var result = Types.InAssembly(Hub).That().ResideInNamespace("IoTHub.Connectivity")
            .ShouldNot().HaveDependencyOn("IoTHub.Contracts").GetResult();
        Assert.That(result.IsSuccessful, Is.False);
    }
}
