using NetArchTest.Rules;

namespace IoTHub.Tests.Architecture;

/// <summary>A module may use its own types, the shared Contracts and the Storage model (HubDb), never another module's internals.</summary>
public sealed class ModuleBoundaryTests
{
    private static readonly string[] Modules = ["Devices", "Connectivity", "Validation", "Aggregation", "Storage", "Gateway", "Observability", "Commands"];

    public static IEnumerable<string> ModuleNames => Modules;

    [TestCaseSource(nameof(ModuleNames))]
    public void A_module_does_not_reach_into_other_modules(string module)
    {
        var others = Modules.Where(m => m != module && m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly)
            .That().ResideInNamespace($"IoTHub.{module}")
            .ShouldNot().HaveDependencyOnAny(others)
            .GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, $"{module} depends on another module's types");
    }

    [Test]
    public void The_web_ui_uses_only_what_modules_publish()
    {
        // The UI sends the modules' public requests through the mediator; it never touches their internals
        // (handlers, entities, the database), and no module depends on the UI.
        var assembly = typeof(IoTHub.HubApp).Assembly;
        var internals = assembly.GetTypes()
            .Where(t => !t.IsVisible && t.Namespace is { } ns && Modules.Any(m => ns.StartsWith($"IoTHub.{m}", StringComparison.Ordinal)) && !t.Name.StartsWith('<'))
            .Select(t => t.FullName!.Replace('+', '/')).ToArray();
        var result = Types.InAssembly(assembly).That().ResideInNamespace("IoTHub.Web").ShouldNot().HaveDependencyOnAny(internals).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, "the web UI reaches into a module's internal types");
        Assert.That(internals, Is.Not.Empty);
        var intoWeb = Types.InAssembly(assembly).That().ResideInNamespace("IoTHub").And().DoNotResideInNamespace("IoTHub.Web")
            .And().DoNotHaveName("HubApp").ShouldNot().HaveDependencyOn("IoTHub.Web").GetResult();
        Assert.That(intoWeb.FailingTypeNames ?? [], Is.Empty, "a module depends on the web UI");
    }

    [Test]
    public void Storage_names_no_other_module()
    {
        var others = Modules.Where(m => m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Storage")
            .ShouldNot().HaveDependencyOnAny(others).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void Contracts_depend_on_no_module()
    {
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Contracts")
            .ShouldNot().HaveDependencyOnAny(Modules.Select(m => $"IoTHub.{m}").ToArray()).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void The_rules_see_real_dependencies()
    {
        // Guards the tests above against passing vacuously: Connectivity does use the shared contracts.
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Connectivity")
            .ShouldNot().HaveDependencyOn("IoTHub.Contracts").GetResult();
        Assert.That(result.IsSuccessful, Is.False);
    }
}
